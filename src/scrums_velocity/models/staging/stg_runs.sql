-- One manifest row per pipeline run. Renames and casts only.
with source as (
    select * from lake_runs
),

renamed as (
    select
        run_id::varchar as run_id,
        command::varchar as command,
        started_at::timestamptz as started_at,
        finished_at::timestamptz as finished_at,
        mode::varchar as mode,
        tasks_listed::bigint as tasks_listed,
        details_fetched::bigint as details_fetched,
        rejects::bigint as rejects,
        history_mismatches::bigint as history_mismatches,
        tasks_missing::bigint as tasks_missing,
        duration_s::double as duration_s,
        outcome::varchar as outcome,
        error::varchar as error,
        resumed_from::varchar as resumed_from,
        details_reused::bigint as details_reused
    from source
)

select * from renamed
