-- Data-quality signals, one row per check and scope. share = count / total where a total
-- makes sense. Rows with service_line_id and workspace_id both null are totals.
with unlinked as (
    select
        'unlinked_tasks' as check_name,
        workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where service_line_id is null) as count,
        count(*) as total
    from intermediate.int_live_tasks
    group by workspace_id
    union all
    -- the total row (null scope): a global aggregate, one row even over no input
    select
        'unlinked_tasks' as check_name,
        null::varchar as workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where service_line_id is null) as count,
        count(*) as total
    from intermediate.int_live_tasks
),

done_without_history as (
    select
        'done_without_history' as check_name,
        workspace_id,
        service_line_id,
        null::varchar as item,
        count(*) filter (where closed_at_from_updated_at) as count,
        count(*) as total
    from marts.task_completions
    where outcome = 'done'
    group by workspace_id, service_line_id
    union all
    -- the total row (null scope): a global aggregate, one row even over no input
    select
        'done_without_history' as check_name,
        null::varchar as workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where closed_at_from_updated_at) as count,
        count(*) as total
    from marts.task_completions
    where outcome = 'done'
),

duplicates as (
    select
        'probable_duplicates' as check_name,
        workspace_id,
        service_line_id,
        null::varchar as item,
        count(*) as count,
        null::bigint as total
    from marts.dq_probable_duplicates
    group by workspace_id, service_line_id
    union all
    -- the total row (null scope): a global aggregate, one row even over no input
    select
        'probable_duplicates' as check_name,
        null::varchar as workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) as count,
        null::bigint as total
    from marts.dq_probable_duplicates
),

unknown_statuses as (
    select
        'unknown_statuses' as check_name,
        workspace_id,
        null::varchar as service_line_id,
        status as item,
        count(*) as count,
        null::bigint as total
    from intermediate.int_live_tasks
    where status not in ('backlog', 'in_progress', 'in_review', 'done', 'cancelled')
    group by workspace_id, status
),

changes_per_task as (
    -- counted per task first: the workspace and service line are the task's (int_live_tasks)
    select
        task_id,
        count(*) filter (where starts_with(changed_by, 'AGT-')) as by_agent,
        count(*) as changes
    from intermediate.int_task_status_changes
    group by task_id
),

agent_share as (
    select
        'agent_share_of_status_changes' as check_name,
        tasks.workspace_id,
        tasks.service_line_id,
        null::varchar as item,
        sum(changes_per_task.by_agent)::bigint as count,
        sum(changes_per_task.changes)::bigint as total
    from changes_per_task
    inner join intermediate.int_live_tasks as tasks using (task_id)
    group by tasks.workspace_id, tasks.service_line_id
    union all
    -- the total row (null scope): a global aggregate, one row even over no input
    select
        'agent_share_of_status_changes' as check_name,
        null::varchar as workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where starts_with(changed_by, 'AGT-')) as count,
        count(*) as total
    from intermediate.int_task_status_changes
),

source_counts as (
    select workspace_id, coalesce(external_source, 'none') as item, count(*) as count
    from intermediate.int_live_tasks
    group by grouping sets ((workspace_id, coalesce(external_source, 'none')),
                            (coalesce(external_source, 'none')))
),

source_share as (
    select
        'external_source_share' as check_name,
        workspace_id,
        null::varchar as service_line_id,
        item,
        count,
        sum(count) over (partition by workspace_id)::bigint as total
    from source_counts
),

missing as (
    select
        'missing_tasks' as check_name,
        workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where missing_since is not null) as count,
        count(*) as total
    from intermediate.int_tasks_as_of
    group by workspace_id
    union all
    -- the total row (null scope): a global aggregate, one row even over no input
    select
        'missing_tasks' as check_name,
        null::varchar as workspace_id,
        null::varchar as service_line_id,
        null::varchar as item,
        count(*) filter (where missing_since is not null) as count,
        count(*) as total
    from intermediate.int_tasks_as_of
),

rejected as (
    select
        'rejected_records' as check_name,
        workspace_id,
        null::varchar as service_line_id,
        stage as item,
        count(*) as count,
        null::bigint as total
    from staging.stg_rejects
    where rejected_at <= getvariable('as_of')::timestamptz
    group by workspace_id, stage
),

checks as (
    select * from unlinked
    union all by name select * from done_without_history
    union all by name select * from duplicates
    union all by name select * from unknown_statuses
    union all by name select * from agent_share
    union all by name select * from source_share
    union all by name select * from missing
    union all by name select * from rejected
),

final as (
    select
        check_name,
        workspace_id,
        service_line_id,
        item,
        count::bigint as count,
        total::bigint as total,
        case when total > 0 then count / total end as share
    from checks
)

select * from final
