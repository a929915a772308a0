-- Reopens: the status changes out of done into another status, of live tasks in a service line
-- (their current LIN), with the local week they fall in. A few percent of the status changes,
-- kept apart so that the marts counting or listing reopens do not hold all of them.
select
    changes.task_id,
    tasks.service_line_id,
    changes.changed_at,
    date_trunc('week', changes.changed_local)::date as week_start,
    changes.from_status,
    changes.to_status,
    changes.changed_by,
    coalesce(starts_with(changes.changed_by, 'AGT-'), false) as by_agent
from intermediate.int_task_status_changes as changes
inner join intermediate.int_live_tasks as tasks using (task_id)
where changes.from_status = 'done'
    and changes.to_status <> 'done'
    and tasks.service_line_id is not null
