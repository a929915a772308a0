-- One row per service line: its latest complete week, how long it has been in that health,
-- and the current week so far against a baseline pro-rated to the part of the week elapsed.
with weekly as (
    select * from marts.lin_velocity_weekly
),

complete as (
    select * from weekly where week_complete
),

latest as (
    select *
    from complete
    qualify row_number() over (partition by service_line_id order by week_start desc) = 1
),

streaks as (
    select
        complete.service_line_id,
        count(*) as weeks_in_health,
        min(complete.week_start) as health_since
    from complete
    inner join latest using (service_line_id)
    where complete.week_start > coalesce((
        select max(c2.week_start)
        from complete as c2
        where c2.service_line_id = complete.service_line_id and c2.health <> latest.health
    ), date '0001-01-01')
    group by complete.service_line_id
),

current_week as (
    select
        service_line_id,
        service_line_name,
        workspace_id,
        week_start as current_week_start,
        completed as wtd_completed,
        baseline_mean as current_baseline_mean,
        baseline_weeks as current_baseline_weeks
    from weekly
    where not week_complete
),

elapsed as (
    select
        least(1.0, greatest(0.0, (
            epoch(timezone(getvariable('tz'), getvariable('as_of')::timestamptz))
            - epoch(date_trunc('week', timezone(getvariable('tz'), getvariable('as_of')::timestamptz)))
        ) / (7 * 86400.0))) as week_fraction_elapsed
),

final as (
    select
        current_week.service_line_id,
        current_week.service_line_name,
        current_week.workspace_id,
        latest.week_start,
        latest.completed,
        latest.cancelled,
        latest.reopened,
        latest.completed_by_agent,
        latest.agent_share,
        latest.baseline_weeks,
        latest.baseline_mean,
        latest.baseline_median,
        latest.baseline_stddev,
        latest.velocity_ratio,
        latest.p_value_below,
        coalesce(latest.health, 'insufficient_history') as health,
        coalesce(streaks.weeks_in_health, 0) as weeks_in_health,
        streaks.health_since,
        current_week.current_week_start,
        elapsed.week_fraction_elapsed,
        current_week.wtd_completed,
        case
            when current_week.current_baseline_weeks >= getvariable('min_baseline_weeks')
                then current_week.current_baseline_mean * elapsed.week_fraction_elapsed
        end as wtd_expected,
        case
            when current_week.current_baseline_weeks >= getvariable('min_baseline_weeks')
                and current_week.current_baseline_mean * elapsed.week_fraction_elapsed > 0
                then current_week.wtd_completed
                    / (current_week.current_baseline_mean * elapsed.week_fraction_elapsed)
        end as wtd_ratio
    from current_week
    cross join elapsed
    left join latest using (service_line_id)
    left join streaks using (service_line_id)
)

select * from final
