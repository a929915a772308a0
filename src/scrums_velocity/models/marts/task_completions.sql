-- One row per live task whose current status is done or cancelled: when it closed (the last
-- transition into that status; updated_at, flagged, when the history has none), its local week,
-- its cycle, lead and review times in hours, and who made the closing transition (closed_by,
-- closed_by_agent for an AGT-* identity; null/false without history).
with tasks as (
    select * from intermediate.int_live_tasks
    where status in ('done', 'cancelled')
),

-- One pass over the status changes: per task, its last transition into done and into
-- cancelled (with who made it), its first start, and the closed time it spent in review.
per_task as (
    select
        task_id,
        max(changed_at) filter (where to_status = 'done') as done_at,
        arg_max(changed_by, changed_at) filter (where to_status = 'done') as done_by,
        max(changed_at) filter (where to_status = 'cancelled') as cancelled_at,
        arg_max(changed_by, changed_at) filter (where to_status = 'cancelled') as cancelled_by,
        min(changed_at) filter (where to_status = 'in_progress') as first_in_progress_at,
        sum(epoch(next_changed_at) - epoch(changed_at))
            filter (where to_status = 'in_review' and next_changed_at is not null)
            as review_seconds
    from intermediate.int_task_status_changes
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
        tasks.updated_at,
        case tasks.status when 'done' then per_task.done_at else per_task.cancelled_at end
            as last_closed_at,
        case tasks.status when 'done' then per_task.done_by else per_task.cancelled_by end
            as closed_by,
        per_task.first_in_progress_at,
        -- review intervals: the changes into in_review that have ended, and the initial status
        -- when the task was created in review (from creation to its first change)
        case
            when per_task.review_seconds is not null
                or (tasks.initial_status = 'in_review' and tasks.first_changed_at is not null)
                then (
                    coalesce(per_task.review_seconds, 0)
                    + case
                        when tasks.initial_status = 'in_review' and tasks.first_changed_at is not null
                            then epoch(tasks.first_changed_at) - epoch(tasks.created_at)
                        else 0
                    end
                ) / 3600.0
        end as in_review_hours
    from tasks
    left join per_task on per_task.task_id = tasks.task_id
),

dated as (
    -- updated_at when the history has no transition into the outcome
    select *, coalesce(last_closed_at, updated_at) as closed_at
    from closed
),

final as (
    -- in the mart's column order
    select
        task_id,
        workspace_id,
        service_line_id,
        project_id,
        outcome,
        created_at,
        first_in_progress_at,
        closed_at,
        date_trunc('week', timezone(getvariable('tz'), closed_at))::date as week_start,
        last_closed_at is null as closed_at_from_updated_at,
        closed_by,
        coalesce(starts_with(closed_by, 'AGT-'), false) as closed_by_agent,
        case
            when first_in_progress_at <= closed_at
                then (epoch(closed_at) - epoch(first_in_progress_at)) / 3600.0
        end as cycle_time_hours,
        (epoch(closed_at) - epoch(created_at)) / 3600.0 as lead_time_hours,
        in_review_hours
    from dated
)

select * from final
