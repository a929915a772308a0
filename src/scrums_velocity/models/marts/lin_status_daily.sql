-- Tasks per service line, day and status at the end of each local day (for cumulative flow
-- diagrams), from the LIN's first day to the day of as_of. Computed from status intervals as
-- +1/-1 events, so the cost grows with the history, not with tasks x days.
with intervals as (
    select
        service_line_id,
        status,
        -- counted on day d when valid_from <= end of d < valid_to (end of d = next midnight)
        cast(valid_from_local - interval 1 microsecond as date) as first_day,
        cast(valid_to_local - interval 1 microsecond as date) as end_day
    from intermediate.int_task_status_intervals
    where service_line_id is not null
),

events as (
    select service_line_id, status, first_day as day, 1 as delta from intervals
    union all
    select service_line_id, status, end_day as day, -1 as delta
    from intervals
    where end_day is not null
),

deltas as (
    select service_line_id, status, day, sum(delta) as delta
    from events
    group by service_line_id, status, day
),

lines as (
    select
        service_line_id,
        min(cast(created_local as date)) as first_day
    from intermediate.int_live_tasks
    where service_line_id is not null
    group by service_line_id
),

statuses as (
    select distinct service_line_id, status from intervals
    union
    select service_line_id, unnest(['backlog', 'in_progress', 'in_review', 'done', 'cancelled'])
    from lines
),

days as (
    select
        lines.service_line_id,
        unnest(generate_series(
            lines.first_day,
            cast(timezone(getvariable('tz'), getvariable('as_of')::timestamptz) as date),
            interval 1 day
        ))::date as day
    from lines
),

grid as (
    select days.service_line_id, days.day, statuses.status
    from days
    inner join statuses using (service_line_id)
    union
    select service_line_id, day, status from deltas
),

running as (
    select
        grid.service_line_id,
        grid.day,
        grid.status,
        sum(coalesce(deltas.delta, 0)) over (
            partition by grid.service_line_id, grid.status
            order by grid.day
            rows between unbounded preceding and current row
        ) as tasks
    from grid
    left join deltas using (service_line_id, day, status)
),

final as (
    select running.service_line_id, running.day, running.status, running.tasks::bigint as tasks
    from running
    inner join days using (service_line_id, day)
)

select * from final
