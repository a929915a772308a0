-- Every state in which a task was seen (one row per new updated_at). Renames and casts only.
with source as (
    select * from lake_task_versions
),

renamed as (
    select
        id::varchar as task_id,
        workspace_id::varchar as workspace_id,
        service_line_id::varchar as service_line_id,
        project_id::varchar as project_id,
        status::varchar as status,
        priority::varchar as priority,
        assignee_id::varchar as assignee_id,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        extracted_at::timestamptz as extracted_at
    from source
)

select * from renamed
