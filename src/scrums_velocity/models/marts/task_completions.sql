-- One row per live task whose current status is done or cancelled: the task-level fact behind
-- every completion count (lin_velocity_weekly counts these rows by service line and week).
select
    task_id,
    workspace_id,
    service_line_id,
    project_id,
    outcome,
    created_at,
    first_in_progress_at,
    closed_at,
    week_start,
    closed_at_from_updated_at,
    closed_by,
    closed_by_agent,
    cycle_time_hours,
    lead_time_hours,
    in_review_hours
from intermediate.int_task_completions
