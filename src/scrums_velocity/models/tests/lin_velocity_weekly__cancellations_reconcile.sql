-- Per service line, the weekly cancellations add up to its number of live cancelled tasks.
with weekly as (
    select service_line_id, sum(cancelled) as cancelled
    from marts.lin_velocity_weekly
    group by service_line_id
),

cancelled as (
    select service_line_id, count(*) as n
    from intermediate.int_live_tasks
    where status = 'cancelled' and service_line_id is not null
    group by service_line_id
)

select *
from weekly
full outer join cancelled using (service_line_id)
where coalesce(weekly.cancelled, 0) <> coalesce(cancelled.n, 0)
