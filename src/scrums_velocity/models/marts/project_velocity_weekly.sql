-- Delivery velocity per project (PROJ-*) and week, across service lines and workspaces,
-- against the project's own baseline of the previous weeks.
with tasks as (
    select * from intermediate.int_live_tasks
    where project_id is not null
),

completions as (
    select * from marts.task_completions
    where project_id is not null
),

projects as (
    select project_id, date_trunc('week', min(created_local))::date as first_week
    from tasks
    group by project_id
),

bounds as (
    select
        date_trunc('week', timezone(getvariable('tz'), getvariable('as_of')::timestamptz))::date
            as current_week
),

spine as (
    select
        projects.project_id,
        bounds.current_week,
        unnest(generate_series(projects.first_week, bounds.current_week, interval 7 day))::date
            as week_start
    from projects
    cross join bounds
),

counts as (
    select
        project_id,
        week_start,
        count(*) filter (where outcome = 'done') as completed,
        count(*) filter (where outcome = 'cancelled') as cancelled,
        count(distinct service_line_id) filter (where outcome = 'done') as service_lines,
        count(distinct workspace_id) filter (where outcome = 'done') as workspaces
    from completions
    group by project_id, week_start
),

weekly as (
    select
        spine.project_id,
        spine.week_start,
        spine.week_start < spine.current_week as week_complete,
        coalesce(counts.completed, 0) as completed,
        coalesce(counts.cancelled, 0) as cancelled,
        coalesce(counts.service_lines, 0) as service_lines,
        coalesce(counts.workspaces, 0) as workspaces
    from spine
    left join counts using (project_id, week_start)
),

final as (
    select
        *,
        count(*) over baseline_window as baseline_weeks,
        avg(completed::double) over baseline_window as baseline_mean,
        case
            when week_complete
                and count(*) over baseline_window >= getvariable('min_baseline_weeks')
                and avg(completed::double) over baseline_window > 0
                then completed / avg(completed::double) over baseline_window
        end as velocity_ratio
    from weekly
    window baseline_window as (
        partition by project_id
        order by week_start
        rows between getvariable('baseline_weeks') preceding and 1 preceding
    )
)

select * from final
