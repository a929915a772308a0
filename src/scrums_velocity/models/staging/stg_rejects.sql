-- Records the extractor could not parse, with their raw payload. Renames and casts only.
with source as (
    select * from lake_rejects
),

renamed as (
    select
        run_id::varchar as run_id,
        workspace_id::varchar as workspace_id,
        rejected_at::timestamptz as rejected_at,
        stage::varchar as stage,
        task_id::varchar as task_id,
        reason::varchar as reason,
        payload::varchar as payload
    from source
)

select * from renamed
