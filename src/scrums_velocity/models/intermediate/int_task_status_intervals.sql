-- Each live task's life as status intervals [valid_from, valid_to): its initial status from
-- creation to the first change, then each change's "to" status until the next change (valid_to
-- is null while it lasts). The status at time t is the interval containing t: the "to" of the
-- last change at or before t, else the initial status.
with tasks as (
    select task_id, workspace_id, service_line_id, project_id, created_at, initial_status
    from intermediate.int_live_tasks
),

changes as (
    select task_id, changed_at, to_status, entry_no
    from intermediate.int_task_status_changes
),

starts as (
    select task_id, 0 as entry_no, initial_status as status, created_at as valid_from
    from tasks
    union all
    select task_id, entry_no, to_status as status, changed_at as valid_from
    from changes
),

intervals as (
    select
        task_id,
        entry_no,
        status,
        valid_from,
        lead(valid_from) over (partition by task_id order by entry_no) as valid_to
    from starts
),

final as (
    select
        intervals.*,
        tasks.workspace_id,
        tasks.service_line_id,
        tasks.project_id
    from intervals
    inner join tasks using (task_id)
)

select * from final
