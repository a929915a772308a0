-- Each live task's life as status intervals [valid_from, valid_to): its initial status from
-- creation to the first change, then each change's "to" status until the next change (valid_to
-- is null while it lasts). The status at time t is the interval containing t: the "to" of the
-- last change at or before t, else the initial status. valid_from_local and valid_to_local are the
-- same instants in local time (build_info.timezone). The task's workspace is in int_live_tasks.
with tasks as (
    select
        task_id, workspace_id, service_line_id, created_at, created_local,
        initial_status, first_changed_at, first_changed_local
    from intermediate.int_live_tasks
),

changes as (
    select
        task_id, service_line_id, entry_no, to_status,
        changed_at, next_changed_at, changed_local, next_changed_local
    from intermediate.int_task_status_changes
),

final as (
    select
        task_id,
        0 as entry_no,
        initial_status as status,
        created_at as valid_from,
        first_changed_at as valid_to,
        created_local as valid_from_local,
        first_changed_local as valid_to_local,
        service_line_id
    from tasks
    union all
    select
        task_id,
        entry_no,
        to_status as status,
        changed_at as valid_from,
        next_changed_at as valid_to,
        changed_local as valid_from_local,
        next_changed_local as valid_to_local,
        service_line_id
    from changes
)

select * from final
