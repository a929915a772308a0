-- Reopens: the status changes out of done into another status, of live tasks in a service line
-- (their current LIN), with the local week they fall in. A few percent of the status changes,
-- kept apart so that the marts counting or listing reopens do not hold all of them.
select
    task_id,
    service_line_id,
    changed_at,
    date_trunc('week', changed_local)::date as week_start,
    from_status,
    to_status,
    changed_by,
    coalesce(starts_with(changed_by, 'AGT-'), false) as by_agent
from intermediate.int_task_status_changes
where from_status = 'done' and to_status <> 'done' and service_line_id is not null
