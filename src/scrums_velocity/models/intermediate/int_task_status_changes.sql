-- Status changes of live tasks made by as_of, deduplicated, with the task's current service line
-- (tasks count for their current LIN), in local time, numbered per task, each with the time of
-- the task's next change (null for its latest), in UTC and local time. The build's largest table
-- (4.5 M rows at 1M tasks), so it holds little more than what the per-task window computes: a
-- reader takes the task's workspace, project and other attributes from int_live_tasks (with the
-- workspace and by_agent too, at 1M tasks, this table held 0.67 GB, and the build spilled more).
with history as (
    select distinct task_id, changed_at, from_status, to_status, changed_by
    from staging.stg_task_history
    where change = 'status' and changed_at <= getvariable('as_of')::timestamptz
),

localised as (
    -- each instant converted to local time once, here (the conversion is the costly part)
    select *, timezone(getvariable('tz'), changed_at) as changed_local
    from history
),

numbered as (
    select
        *,
        row_number() over per_task as entry_no,
        lead(changed_at) over per_task as next_changed_at,
        lead(changed_local) over per_task as next_changed_local
    from localised
    window per_task as (partition by task_id order by changed_at, from_status, to_status)
),

tasks as (
    select task_id, service_line_id
    from intermediate.int_tasks_as_of
    where missing_since is null
),

final as (
    select
        numbered.task_id,
        tasks.service_line_id,
        numbered.changed_at,
        numbered.changed_local,
        numbered.from_status,
        numbered.to_status,
        numbered.changed_by,
        numbered.entry_no,
        numbered.next_changed_at,
        numbered.next_changed_local
    from numbered
    inner join tasks using (task_id)
)

select * from final
