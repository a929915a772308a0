-- The tasks behind each LIN-week's numbers: one row per task event. completed and cancelled are
-- the closures lin_velocity_weekly counts (live tasks, their current LIN, the last transition into
-- done/cancelled, updated_at without one); reopened the transitions out of done it counts;
-- moved_in and moved_out the changes of a task's service line between two states the lake saw
-- (task_versions and the task's state at as_of), at the later state's updated_at.
with bounds as (
    select
        getvariable('as_of')::timestamptz as as_of,
        date_trunc('week', timezone(getvariable('tz'), getvariable('as_of')::timestamptz))::date
            as current_week
),

closures as (
    select
        service_line_id,
        task_id,
        case outcome when 'done' then 'completed' else outcome end as event,
        closed_at as event_at,
        week_start,
        closed_by as changed_by,
        closed_by_agent as by_agent,
        null::varchar as other_service_line_id
    from marts.task_completions
    where service_line_id is not null
),

reopens as (
    select
        service_line_id,
        task_id,
        'reopened' as event,
        changed_at as event_at,
        week_start,
        changed_by,
        by_agent,
        null::varchar as other_service_line_id
    from intermediate.int_task_reopens
),

states as (
    -- one row per (task, updated_at): stg_task_versions' unique test holds the build to it
    select stg_task_versions.task_id, stg_task_versions.service_line_id, stg_task_versions.updated_at
    from staging.stg_task_versions, bounds
    where stg_task_versions.updated_at <= bounds.as_of
),

movers as (
    -- only a task once seen in another service line than its current one can have moved
    select distinct states.task_id
    from states
    inner join intermediate.int_live_tasks as live using (task_id)
    where states.service_line_id is distinct from live.service_line_id
),

all_states as (
    -- the task's state at as_of last, so a move seen only in the latest state counts too
    select states.task_id, states.service_line_id, states.updated_at
    from states
    inner join movers using (task_id)
    inner join intermediate.int_live_tasks as live using (task_id)
    where states.updated_at < live.updated_at
    union all
    select live.task_id, live.service_line_id, live.updated_at
    from intermediate.int_live_tasks as live
    inner join movers using (task_id)
),

transitions as (
    select
        task_id,
        lag(service_line_id) over (partition by task_id order by updated_at) as from_lin,
        service_line_id as to_lin,
        updated_at as moved_at,
        row_number() over (partition by task_id order by updated_at) as state_no
    from all_states
),

moves as (
    select * from transitions
    where state_no > 1 and from_lin is distinct from to_lin
),

moved as (
    select
        to_lin as service_line_id,
        task_id,
        'moved_in' as event,
        moved_at as event_at,
        date_trunc('week', timezone(getvariable('tz'), moved_at))::date as week_start,
        null::varchar as changed_by,
        false as by_agent,
        from_lin as other_service_line_id
    from moves
    where to_lin is not null
    union all
    select
        from_lin as service_line_id,
        task_id,
        'moved_out' as event,
        moved_at as event_at,
        date_trunc('week', timezone(getvariable('tz'), moved_at))::date as week_start,
        null::varchar as changed_by,
        false as by_agent,
        to_lin as other_service_line_id
    from moves
    where from_lin is not null
),

events as (
    select * from closures
    union all by name select * from reopens
    union all by name select * from moved
),

final as (
    select
        events.service_line_id,
        coalesce(names.service_line_name, events.service_line_id) as service_line_name,
        events.week_start,
        events.week_start < bounds.current_week as week_complete,
        events.event,
        events.task_id,
        events.event_at,
        events.changed_by,
        events.by_agent,
        events.other_service_line_id,
        tasks.title,
        tasks.status,
        tasks.assignee_id,
        tasks.workspace_id,
        tasks.external_source,
        tasks.external_url
    from events
    cross join bounds
    inner join intermediate.int_live_tasks as tasks using (task_id)
    left join staging.stg_service_lines as names
        on names.service_line_id = events.service_line_id
)

select * from final
