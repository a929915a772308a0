-- Per service line, the weekly completions add up to its number of live done tasks.
with weekly as (
    select service_line_id, sum(completed) as completed
    from marts.lin_velocity_weekly
    group by service_line_id
),

done as (
    select service_line_id, count(*) as done
    from intermediate.int_live_tasks
    where status = 'done' and service_line_id is not null
    group by service_line_id
)

select *
from weekly
full outer join done using (service_line_id)
where coalesce(weekly.completed, 0) <> coalesce(done.done, 0)
