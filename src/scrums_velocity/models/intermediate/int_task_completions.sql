-- One row per live task whose current status is done or cancelled: when it closed (the last
-- transition into that status; updated_at, flagged, when the history has none), its local week,
-- its cycle, lead and review times in hours, and who made the closing transition (closed_by,
-- closed_by_agent for an AGT-* identity; null/false without history).
with tasks as (
    select * from intermediate.int_live_tasks
    where status in ('done', 'cancelled')
),

changes as (
    select * from intermediate.int_task_status_changes
),

last_close as (
    select
        task_id,
        to_status,
        max(changed_at) as closed_at,
        arg_max(changed_by, changed_at) as closed_by
    from changes
    where to_status in ('done', 'cancelled')
    group by task_id, to_status
),

first_start as (
    select task_id, min(changed_at) as first_in_progress_at
    from changes
    where to_status = 'in_progress'
    group by task_id
),

review as (
    select task_id, sum(epoch(valid_to) - epoch(valid_from)) / 3600.0 as in_review_hours
    from intermediate.int_task_status_intervals
    where status = 'in_review' and valid_to is not null
    group by task_id
),

closed as (
    select
        tasks.task_id,
        tasks.workspace_id,
        tasks.service_line_id,
        tasks.project_id,
        tasks.status as outcome,
        tasks.created_at,
        coalesce(last_close.closed_at, tasks.updated_at) as closed_at,
        last_close.closed_at is null as closed_at_from_updated_at,
        last_close.closed_by,
        coalesce(starts_with(last_close.closed_by, 'AGT-'), false) as closed_by_agent,
        first_start.first_in_progress_at,
        review.in_review_hours
    from tasks
    left join last_close
        on last_close.task_id = tasks.task_id and last_close.to_status = tasks.status
    left join first_start on first_start.task_id = tasks.task_id
    left join review on review.task_id = tasks.task_id
),

final as (
    select
        *,
        date_trunc('week', timezone(getvariable('tz'), closed_at))::date as week_start,
        case
            when first_in_progress_at <= closed_at
                then (epoch(closed_at) - epoch(first_in_progress_at)) / 3600.0
        end as cycle_time_hours,
        (epoch(closed_at) - epoch(created_at)) / 3600.0 as lead_time_hours
    from closed
)

select * from final
