-- One row per task in its latest extracted state. Staging: renames and casts only.
with source as (
    select * from lake_tasks
),

renamed as (
    select
        id::varchar as task_id,
        workspace_id::varchar as workspace_id,
        service_line_id::varchar as service_line_id,
        project_id::varchar as project_id,
        title::varchar as title,
        description::varchar as description,
        status::varchar as status,
        priority::varchar as priority,
        assignee_id::varchar as assignee_id,
        external_id::varchar as external_id,
        external_source::varchar as external_source,
        external_url::varchar as external_url,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        history_count::integer as history_count,
        missing_since::timestamptz as missing_since,
        extracted_at::timestamptz as extracted_at
    from source
)

select * from renamed
