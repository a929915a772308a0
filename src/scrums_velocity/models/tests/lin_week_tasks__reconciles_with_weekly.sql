-- Per LIN and week, the completed, cancelled and reopened task rows of lin_week_tasks are exactly
-- the counts of lin_velocity_weekly: the drill-down lists the tasks behind every number.
with tasks as (
    select
        service_line_id,
        week_start,
        count(*) filter (where event = 'completed') as completed,
        count(*) filter (where event = 'cancelled') as cancelled,
        count(*) filter (where event = 'reopened') as reopened
    from marts.lin_week_tasks
    group by service_line_id, week_start
)

select
    coalesce(weekly.service_line_id, tasks.service_line_id) as service_line_id,
    coalesce(weekly.week_start, tasks.week_start) as week_start,
    weekly.completed,
    tasks.completed as completed_rows,
    weekly.cancelled,
    tasks.cancelled as cancelled_rows,
    weekly.reopened,
    tasks.reopened as reopened_rows
from marts.lin_velocity_weekly as weekly
full outer join tasks using (service_line_id, week_start)
where coalesce(weekly.completed, 0) <> coalesce(tasks.completed, 0)
    or coalesce(weekly.cancelled, 0) <> coalesce(tasks.cancelled, 0)
    or coalesce(weekly.reopened, 0) <> coalesce(tasks.reopened, 0)
