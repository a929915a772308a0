-- Every task as it stood at as_of (build_info.as_of), one row per task created by then. With
-- as_of at the latest extraction (the default) this is stg_tasks unchanged. For an earlier as_of,
-- a task changed since takes its service line, project, priority and assignee from its latest
-- lake version updated by as_of (its current values when the lake holds none that old), its
-- status from its last status change by as_of (else that version's status, else the from-status
-- of its first change, else backlog), and missing_since only if it went missing by as_of.
with bounds as (
    select getvariable('as_of')::timestamptz as as_of
),

tasks as (
    select stg_tasks.*
    from staging.stg_tasks, bounds
    where stg_tasks.created_at <= bounds.as_of
),

-- Only tasks changed after as_of need their state then rebuilt (none when as_of is the latest
-- extraction): versions and history are read for those alone.
changed as (
    select stg_tasks.task_id
    from staging.stg_tasks, bounds
    where stg_tasks.created_at <= bounds.as_of and stg_tasks.updated_at > bounds.as_of
),

versions as (
    select
        stg_task_versions.task_id,
        stg_task_versions.service_line_id,
        stg_task_versions.project_id,
        stg_task_versions.status,
        stg_task_versions.priority,
        stg_task_versions.assignee_id,
        stg_task_versions.updated_at
    from staging.stg_task_versions, bounds
    where stg_task_versions.updated_at <= bounds.as_of
        and stg_task_versions.task_id in (select changed.task_id from changed)
    qualify row_number() over (
        partition by stg_task_versions.task_id
        order by stg_task_versions.updated_at desc, stg_task_versions.extracted_at desc
    ) = 1
),

status_then as (
    select
        history.task_id,
        max_by(history.to_status, history.changed_at)
            filter (where history.changed_at <= bounds.as_of) as status,
        max(history.changed_at) filter (where history.changed_at <= bounds.as_of) as last_change,
        min_by(history.from_status, history.changed_at) as first_from_status,
        count(*) filter (where history.changed_at <= bounds.as_of) as entries
    from staging.stg_task_history as history, bounds
    where history.change = 'status'
        and history.task_id in (select changed.task_id from changed)
    group by history.task_id
),

final as (
    select
        tasks.task_id,
        tasks.workspace_id,
        case when tasks.updated_at <= bounds.as_of then tasks.service_line_id
            when versions.task_id is not null then versions.service_line_id
            else tasks.service_line_id end as service_line_id,
        case when tasks.updated_at <= bounds.as_of then tasks.project_id
            when versions.task_id is not null then versions.project_id
            else tasks.project_id end as project_id,
        tasks.title,
        tasks.description,
        case when tasks.updated_at <= bounds.as_of then tasks.status
            else coalesce(
                status_then.status,
                versions.status,
                status_then.first_from_status,
                'backlog'
            ) end as status,
        case when tasks.updated_at <= bounds.as_of then tasks.priority
            else coalesce(versions.priority, tasks.priority) end as priority,
        case when tasks.updated_at <= bounds.as_of then tasks.assignee_id
            when versions.task_id is not null then versions.assignee_id
            else tasks.assignee_id end as assignee_id,
        tasks.external_id,
        tasks.external_source,
        tasks.external_url,
        tasks.created_at,
        case when tasks.updated_at <= bounds.as_of then tasks.updated_at
            else coalesce(
                greatest(versions.updated_at, status_then.last_change), tasks.created_at
            ) end as updated_at,
        case when tasks.updated_at <= bounds.as_of then tasks.history_count
            else coalesce(status_then.entries, 0)::integer end as history_count,
        case when tasks.missing_since <= bounds.as_of then tasks.missing_since end
            as missing_since,
        tasks.extracted_at
    from tasks
    cross join bounds
    left join versions using (task_id)
    left join status_then using (task_id)
)

select * from final
