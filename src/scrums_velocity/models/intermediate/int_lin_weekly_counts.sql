-- Per service line and local week: tasks completed, cancelled and reopened (counted for the
-- task's current LIN). Weeks with nothing are absent here; the marts zero-fill them.
with completions as (
    select * from marts.task_completions
    where service_line_id is not null
),

closed as (
    select
        service_line_id,
        week_start,
        count(*) filter (where outcome = 'done') as completed,
        count(*) filter (where outcome = 'cancelled') as cancelled,
        count(*) filter (where outcome = 'done' and closed_at_from_updated_at)
            as completed_without_history,
        count(*) filter (where outcome = 'done' and closed_by_agent) as completed_by_agent
    from completions
    group by service_line_id, week_start
),

reopens as (
    select
        service_line_id,
        week_start,
        count(*) as reopened
    from intermediate.int_task_reopens
    group by service_line_id, week_start
),

final as (
    select
        service_line_id,
        week_start,
        coalesce(closed.completed, 0) as completed,
        coalesce(closed.cancelled, 0) as cancelled,
        coalesce(reopens.reopened, 0) as reopened,
        coalesce(closed.completed_without_history, 0) as completed_without_history,
        coalesce(closed.completed_by_agent, 0) as completed_by_agent
    from closed
    full outer join reopens using (service_line_id, week_start)
)

select * from final
