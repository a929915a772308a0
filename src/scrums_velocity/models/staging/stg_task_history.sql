-- One row per status-history entry the API returned. Staging: renames and casts only.
with source as (
    select * from lake_task_history
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
