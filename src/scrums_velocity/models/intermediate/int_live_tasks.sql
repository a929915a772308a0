-- Tasks the latest complete listing still returned (tasks marked missing_since are excluded
-- everywhere downstream), with their initial status and local creation time.
with tasks as (
    select * from staging.stg_tasks
),

history as (
    select * from staging.stg_task_history
    where change = 'status'
),

first_change as (
    select
        task_id,
        arg_min(from_status, changed_at) as first_from_status
    from history
    group by task_id
),

final as (
    select
        tasks.*,
        coalesce(first_change.first_from_status, tasks.status) as initial_status,
        timezone(getvariable('tz'), tasks.created_at) as created_local,
        tasks.status in ('backlog', 'in_progress', 'in_review') as is_open
    from tasks
    left join first_change using (task_id)
    where tasks.missing_since is null
)

select * from final
