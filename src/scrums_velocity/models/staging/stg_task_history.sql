-- One row per status-history entry the API returned. Staging: renames and casts only.
with source as (
    select *
    from read_parquet(
        getvariable('lake_dir') || '/task_history/*/*.parquet', hive_partitioning = true
    )
),

renamed as (
    select
        task_id::varchar as task_id,
        workspace_id::varchar as workspace_id,
        "at"::timestamptz as changed_at,
        change::varchar as change,
        from_value::varchar as from_status,
        to_value::varchar as to_status,
        "by"::varchar as changed_by
    from source
)

select * from renamed
