-- How this warehouse was built: the parameters every number in it depends on.
select
    getvariable('as_of')::timestamptz as as_of,
    getvariable('tz')::varchar as timezone,
    getvariable('baseline_weeks')::integer as baseline_weeks,
    getvariable('min_baseline_weeks')::integer as min_baseline_weeks,
    getvariable('at_risk_ratio')::double as at_risk_ratio,
    getvariable('at_risk_p_value')::double as at_risk_p_value,
    getvariable('watch_ratio')::double as watch_ratio,
    getvariable('lake_url')::varchar as lake_url,
    getvariable('lake_snapshot')::varchar as lake_snapshot,
    getvariable('storage_version')::varchar as storage_version,
    getvariable('engine')::varchar as engine,
    getvariable('built_at')::timestamptz as built_at
