-- Tasks completed per service line and local day, zero-filled from the LIN's first day to the
-- day of as_of: the throughput the forecasts sample from.
with lines as (
    select service_line_id, min(cast(created_local as date)) as first_day
    from intermediate.int_live_tasks
    where service_line_id is not null
    group by service_line_id
),

spine as (
    select
        lines.service_line_id,
        unnest(generate_series(
            lines.first_day,
            cast(timezone(getvariable('tz'), getvariable('as_of')::timestamptz) as date),
            interval 1 day
        ))::date as day
    from lines
),

done as (
    select
        service_line_id,
        cast(timezone(getvariable('tz'), closed_at) as date) as day,
        count(*) as completed
    from marts.task_completions
    where outcome = 'done' and service_line_id is not null
    group by service_line_id, day
),

final as (
    select spine.service_line_id, spine.day, coalesce(done.completed, 0) as completed
    from spine
    left join done using (service_line_id, day)
)

select * from final
