-- Flow per service line and week: work in progress at the week's end, and cycle, lead and
-- review-time percentiles of the tasks completed that week.
with weeks as (
    select * from intermediate.int_lin_weeks
),

-- The status at a week's end is the status at the end of its Sunday (next Monday 00:00
-- local), which lin_status_daily already holds: the "to" of the last status entry at or before
-- that instant, else the initial status (as-of semantics, over status intervals). The current
-- week has no Sunday yet: its row shows the status now.
wip as (
    select weeks.service_line_id, weeks.week_start, sum(daily.tasks) as wip_at_week_end
    from weeks
    inner join marts.lin_status_daily as daily
        on daily.service_line_id = weeks.service_line_id
        and daily.day = least(
            weeks.week_start + 6,
            cast(timezone(getvariable('tz'), getvariable('as_of')::timestamptz) as date)
        )
        and daily.status in ('in_progress', 'in_review')
    group by weeks.service_line_id, weeks.week_start
),

closed as (
    select
        service_line_id,
        week_start,
        count(*) as completed,
        quantile_cont(cycle_time_hours, 0.5) as cycle_time_p50_hours,
        quantile_cont(cycle_time_hours, 0.85) as cycle_time_p85_hours,
        quantile_cont(lead_time_hours, 0.5) as lead_time_p50_hours,
        quantile_cont(lead_time_hours, 0.85) as lead_time_p85_hours,
        quantile_cont(in_review_hours, 0.5) as in_review_p50_hours
    from marts.task_completions
    where outcome = 'done' and service_line_id is not null
    group by service_line_id, week_start
),

final as (
    select
        weeks.service_line_id,
        weeks.workspace_id,
        weeks.week_start,
        weeks.week_complete,
        coalesce(wip.wip_at_week_end, 0)::bigint as wip_at_week_end,
        coalesce(closed.completed, 0) as completed,
        closed.cycle_time_p50_hours,
        closed.cycle_time_p85_hours,
        closed.lead_time_p50_hours,
        closed.lead_time_p85_hours,
        closed.in_review_p50_hours
    from weeks
    left join wip using (service_line_id, week_start)
    left join closed using (service_line_id, week_start)
)

select * from final
