-- Delivery velocity per service line and week against the LIN's own baseline.
with weeks as (
    select * from intermediate.int_lin_weeks
),

counts as (
    select * from intermediate.int_lin_weekly_counts
),

weekly as (
    select
        weeks.service_line_id,
        weeks.workspace_id,
        weeks.week_start,
        weeks.week_complete,
        coalesce(counts.completed, 0) as completed,
        coalesce(counts.cancelled, 0) as cancelled,
        coalesce(counts.reopened, 0) as reopened,
        coalesce(counts.completed_without_history, 0) as completed_without_history,
        coalesce(counts.completed_by_agent, 0) as completed_by_agent
    from weeks
    left join counts using (service_line_id, week_start)
),

names as (
    select * from staging.stg_service_lines
),

baselined as (
    select
        *,
        count(*) over baseline_window as baseline_weeks,
        avg(completed::double) over baseline_window as baseline_mean,
        median(completed::double) over baseline_window as baseline_median,
        stddev_samp(completed::double) over baseline_window as baseline_stddev
    from weekly
    window baseline_window as (
        partition by service_line_id
        order by week_start
        rows between getvariable('baseline_weeks') preceding and 1 preceding
    )
),

-- The Poisson probability of a week this low: P(X <= completed), X ~ Poisson(baseline_mean),
-- summed term by term in log space: exp(k ln(lambda) - lambda - ln(k!)) for k = 0 .. completed.
-- ln(k!) is a running sum of ln(j) over a table of k (one join, written once for DuckDB and
-- Spark alike: Spark has no log-gamma).
ln_factorials as (
    select
        k,
        sum(case when k = 0 then 0.0 else ln(k) end) over (
            order by k rows between unbounded preceding and current row
        ) as ln_factorial
    from (
        select unnest(generate_series(0, coalesce(max(completed), 0))) as k
        from baselined
    ) as ks
),

poisson as (
    select
        baselined.service_line_id,
        baselined.week_start,
        sum(exp(
            ln_factorials.k * ln(baselined.baseline_mean) - baselined.baseline_mean
            - ln_factorials.ln_factorial
        )) as p_at_most
    from baselined
    inner join ln_factorials on ln_factorials.k <= baselined.completed
    where baselined.week_complete
        and baselined.baseline_weeks >= getvariable('min_baseline_weeks')
        and baselined.baseline_mean > 0
    group by baselined.service_line_id, baselined.week_start
),

scored as (
    select
        baselined.*,
        baselined.baseline_weeks >= getvariable('min_baseline_weeks') as has_history,
        case
            when not baselined.week_complete
                or baselined.baseline_weeks < getvariable('min_baseline_weeks') then null
            when baselined.baseline_mean = 0 then null
            else baselined.completed / baselined.baseline_mean
        end as velocity_ratio,
        case
            when not baselined.week_complete
                or baselined.baseline_weeks < getvariable('min_baseline_weeks') then null
            when baselined.baseline_mean = 0 then 1.0
            else least(1.0, poisson.p_at_most)
        end as p_value_below
    from baselined
    left join poisson
        on poisson.service_line_id = baselined.service_line_id
        and poisson.week_start = baselined.week_start
),

final as (
    select
        scored.service_line_id,
        coalesce(names.service_line_name, scored.service_line_id) as service_line_name,
        workspace_id,
        week_start,
        week_complete,
        completed,
        cancelled,
        reopened,
        completed_without_history,
        completed_by_agent,
        case when completed > 0 then completed_by_agent / completed end as agent_share,
        baseline_weeks,
        baseline_mean,
        baseline_median,
        baseline_stddev,
        velocity_ratio,
        p_value_below,
        case
            when not week_complete then 'week_in_progress'
            when not has_history then 'insufficient_history'
            when velocity_ratio < getvariable('at_risk_ratio')
                and p_value_below < getvariable('at_risk_p_value') then 'at_risk'
            when velocity_ratio < getvariable('watch_ratio') then 'watch'
            else 'healthy'
        end as health
    from scored
    left join names using (service_line_id)
)

select * from final
