-- Flow per service line and week: work in progress at the week's end (status by ASOF join on
-- the history), and cycle, lead and review-time percentiles of the tasks completed that week.
with weeks as (
    select * from intermediate.int_lin_weeks
),

tasks as (
    select * from intermediate.int_live_tasks
    where service_line_id is not null
),

changes as (
    select * from intermediate.int_task_status_changes
),

last_change as (
    select task_id, max(changed_at) as last_changed_at
    from changes
    group by task_id
),

-- After its last change a task keeps its current status, so a closed task can be in progress at
-- a week's end only before its last change: only those (task, week) pairs need the ASOF join.
candidates as (
    select
        weeks.service_line_id,
        weeks.week_start,
        weeks.week_end_at,
        tasks.task_id,
        tasks.initial_status
    from weeks
    inner join tasks
        on tasks.service_line_id = weeks.service_line_id
        and tasks.created_at <= weeks.week_end_at
    left join last_change using (task_id)
    where tasks.is_open or weeks.week_end_at < last_change.last_changed_at
),

status_at_week_end as (
    select
        candidates.service_line_id,
        candidates.week_start,
        coalesce(changes.to_status, candidates.initial_status) as status
    from candidates
    asof left join changes
        on changes.task_id = candidates.task_id
        and candidates.week_end_at >= changes.changed_at
),

wip as (
    select service_line_id, week_start, count(*) as wip_at_week_end
    from status_at_week_end
    where status in ('in_progress', 'in_review')
    group by service_line_id, week_start
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
    from intermediate.int_task_completions
    where outcome = 'done' and service_line_id is not null
    group by service_line_id, week_start
),

final as (
    select
        weeks.service_line_id,
        weeks.workspace_id,
        weeks.week_start,
        weeks.week_complete,
        coalesce(wip.wip_at_week_end, 0) as wip_at_week_end,
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
