-- Process-behaviour (XmR) view of weekly completions per service line: the centre line and
-- natural process limits from the baseline window, and the standard run signals with a reason.
with weekly as (
    select * from marts.lin_velocity_weekly
    where week_complete
),

ranges as (
    select
        *,
        abs(completed - lag(completed) over (partition by service_line_id order by week_start))
            as moving_range
    from weekly
),

limits as (
    select
        *,
        -- moving ranges between consecutive weeks inside the baseline window (K - 1 of them)
        avg(moving_range::double) over (
            partition by service_line_id
            order by week_start
            rows between getvariable('baseline_weeks') - 1 preceding and 1 preceding
        ) as mean_moving_range,
        baseline_weeks >= getvariable('min_baseline_weeks') as has_history
    from ranges
),

bounded as (
    select
        *,
        case when has_history then baseline_mean end as centre_line,
        case when has_history then baseline_mean + 2.66 * mean_moving_range end as upper_limit,
        case when has_history then greatest(0.0, baseline_mean - 2.66 * mean_moving_range) end
            as lower_limit
    from limits
),

flags as (
    select
        *,
        completed < lower_limit as below_lower_limit,
        completed < centre_line as below_centre,
        completed < (centre_line + lower_limit) / 2 as nearer_lower_limit
    from bounded
),

runs as (
    select
        *,
        count(*) filter (where below_centre) over last_8 as below_centre_in_8,
        count(*) over last_8 as weeks_in_8,
        count(*) filter (where nearer_lower_limit) over last_4 as nearer_lower_in_4,
        count(*) over last_4 as weeks_in_4
    from flags
    window
        last_8 as (partition by service_line_id order by week_start
                   rows between 7 preceding and current row),
        last_4 as (partition by service_line_id order by week_start
                   rows between 3 preceding and current row)
),

signals as (
    select
        *,
        coalesce(below_lower_limit, false) as signal_below_lower_limit,
        weeks_in_8 = 8 and below_centre_in_8 = 8 as signal_8_below_centre,
        weeks_in_4 = 4 and nearer_lower_in_4 >= 3 and has_history as signal_3_of_4_near_lower
    from runs
),

final as (
    select
        service_line_id,
        workspace_id,
        week_start,
        completed,
        centre_line,
        mean_moving_range,
        upper_limit,
        lower_limit,
        moving_range,
        signal_below_lower_limit,
        signal_8_below_centre,
        signal_3_of_4_near_lower,
        signal_below_lower_limit or signal_8_below_centre or signal_3_of_4_near_lower as has_signal,
        nullif(concat_ws('; ',
            case when signal_below_lower_limit then format(
                '{} completed, below the lower limit of {:.1f}/week', completed, lower_limit) end,
            case when signal_8_below_centre then format(
                '8 weeks in a row below the usual {:.1f}/week', centre_line) end,
            case when signal_3_of_4_near_lower then format(
                '3 of the last 4 weeks nearer the lower limit ({:.1f}) than the usual {:.1f}/week',
                lower_limit, centre_line) end
        ), '') as reason
    from signals
)

select * from final
