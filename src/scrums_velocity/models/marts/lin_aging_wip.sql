-- Open tasks (backlog, in progress, in review) with their age at as_of, against the service
-- line's p85 cycle time (for started work) or p85 lead time (for backlog) over the baseline
-- window of complete weeks.
with open_tasks as (
    select * from intermediate.int_live_tasks
    where is_open and service_line_id is not null
),

-- one pass over the status changes of open tasks only (a tenth of all tasks): when each first
-- started and when it entered its current status
changes as (
    select
        task_id,
        min(changed_at) filter (where to_status = 'in_progress') as started_at,
        max(changed_at) as status_since
    from intermediate.int_task_status_changes
    where task_id in (select open_tasks.task_id from open_tasks)
    group by task_id
),

bounds as (
    select
        getvariable('as_of')::timestamptz as as_of,
        date_trunc('week', timezone(getvariable('tz'), getvariable('as_of')::timestamptz))::date
            as current_week
),

reference as (
    select
        completions.service_line_id,
        quantile_cont(completions.cycle_time_hours, 0.85) as cycle_time_p85_hours,
        quantile_cont(completions.lead_time_hours, 0.85) as lead_time_p85_hours
    from marts.task_completions as completions
    cross join bounds
    where completions.outcome = 'done'
        and completions.week_start < bounds.current_week
        and completions.week_start >= bounds.current_week - 7 * getvariable('baseline_weeks')
    group by completions.service_line_id
),

aged as (
    select
        open_tasks.task_id,
        open_tasks.workspace_id,
        open_tasks.service_line_id,
        open_tasks.project_id,
        open_tasks.title,
        open_tasks.status,
        open_tasks.priority,
        open_tasks.assignee_id,
        open_tasks.external_source,
        open_tasks.external_url,
        open_tasks.created_at,
        changes.started_at,
        coalesce(changes.status_since, open_tasks.created_at) as status_since,
        open_tasks.status <> 'backlog' and changes.started_at is not null as is_started,
        bounds.as_of
    from open_tasks
    cross join bounds
    left join changes using (task_id)
),

final as (
    select
        aged.task_id,
        aged.workspace_id,
        aged.service_line_id,
        coalesce(names.service_line_name, aged.service_line_id) as service_line_name,
        aged.project_id,
        aged.title,
        aged.status,
        aged.priority,
        aged.assignee_id,
        aged.external_source,
        aged.external_url,
        aged.created_at,
        aged.started_at,
        aged.status_since,
        case when aged.is_started then 'since_started' else 'since_created' end as age_basis,
        (epoch(aged.as_of) - epoch(case when aged.is_started then aged.started_at
                                      else aged.created_at end)) / 3600.0 as age_hours,
        (epoch(aged.as_of) - epoch(aged.status_since)) / 3600.0 as hours_in_status,
        case when aged.is_started then reference.cycle_time_p85_hours
             else reference.lead_time_p85_hours end as reference_p85_hours,
        (epoch(aged.as_of) - epoch(case when aged.is_started then aged.started_at
                                      else aged.created_at end)) / 3600.0
            > case when aged.is_started then reference.cycle_time_p85_hours
                   else reference.lead_time_p85_hours end as exceeds_p85
    from aged
    left join reference using (service_line_id)
    left join staging.stg_service_lines as names using (service_line_id)
)

select * from final
