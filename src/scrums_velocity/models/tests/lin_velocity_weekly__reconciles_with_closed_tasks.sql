-- Per service line, the weekly completions add up to its number of live done tasks, and the
-- weekly cancellations to its number of live cancelled tasks.
with weekly as (
    select service_line_id, sum(completed) as completed, sum(cancelled) as cancelled
    from marts.lin_velocity_weekly
    group by service_line_id
),

closed as (
    select
        service_line_id,
        count(*) filter (where status = 'done') as done,
        count(*) filter (where status = 'cancelled') as cancelled
    from intermediate.int_live_tasks
    where status in ('done', 'cancelled') and service_line_id is not null
    group by service_line_id
)

select *
from weekly
full outer join closed using (service_line_id)
where coalesce(weekly.completed, 0) <> coalesce(closed.done, 0)
    or coalesce(weekly.cancelled, 0) <> coalesce(closed.cancelled, 0)
