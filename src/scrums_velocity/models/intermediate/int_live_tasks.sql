-- Tasks the latest complete listing still returned (tasks marked missing_since are excluded
-- everywhere downstream), with their initial status (the "from" of their first status change,
-- else their current status) and local creation time.
with tasks as (
    select
        task_id, workspace_id, service_line_id, project_id, title, status, priority,
        assignee_id, external_id, external_source, external_url, created_at, updated_at
    from intermediate.int_tasks_as_of
    where missing_since is null
),

first_change as (
    select
        task_id,
        from_status as first_from_status,
        changed_at as first_changed_at,
        changed_local as first_changed_local
    from intermediate.int_task_status_changes
    where entry_no = 1
),

final as (
    select
        tasks.*,
        coalesce(first_change.first_from_status, tasks.status) as initial_status,
        first_change.first_changed_at,
        first_change.first_changed_local,
        timezone(getvariable('tz'), tasks.created_at) as created_local,
        tasks.status in ('backlog', 'in_progress', 'in_review') as is_open
    from tasks
    left join first_change using (task_id)
)

select * from final
