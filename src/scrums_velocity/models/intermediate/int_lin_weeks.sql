-- The week spine: every service line has one row per ISO week (Monday 00:00 in the configured
-- time zone) from the week of its first task's creation to the week containing as_of (the
-- current, incomplete week).
with tasks as (
    select * from intermediate.int_live_tasks
    where service_line_id is not null
),

lines as (
    select
        service_line_id,
        min(workspace_id) as workspace_id,
        date_trunc('week', min(created_local))::date as first_week
    from tasks
    group by service_line_id
),

bounds as (
    select
        date_trunc('week', timezone(getvariable('tz'), getvariable('as_of')::timestamptz))::date
            as current_week
),

spine as (
    select
        lines.service_line_id,
        lines.workspace_id,
        lines.first_week,
        bounds.current_week,
        unnest(generate_series(lines.first_week, bounds.current_week, interval 7 day))::date
            as week_start
    from lines
    cross join bounds
),

final as (
    select
        service_line_id,
        workspace_id,
        week_start,
        week_start < current_week as week_complete,
        timezone(getvariable('tz'), week_start::timestamp) as week_start_at,
        timezone(getvariable('tz'), (week_start + 7)::timestamp) as week_end_at
    from spine
)

select * from final
