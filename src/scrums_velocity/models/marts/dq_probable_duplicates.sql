-- Probable duplicates: two live tasks of one service line with the same normalised title
-- (lower case, runs of anything but letters and digits as one space, trimmed) created within
-- 7 days of each other, one bound to an external tool and one not (created in both systems).
with tasks as (
    select
        task_id,
        workspace_id,
        service_line_id,
        title,
        created_at,
        external_id,
        external_source,
        case
            -- plain ASCII words with single spaces are their own normalisation once lower-cased
            -- (the regular expression costs 0.8 s per million titles, this test 0.15 s);
            -- \z, not $, which Java (Spark) also matches before a final newline
            when regexp_matches(title, '^[A-Za-z0-9]+( [A-Za-z0-9]+)*\z') then lower(title)
            else trim(regexp_replace(lower(title), '[^\pL\pN]+', ' ', 'g'))
        end as normalised_title
    -- the live tasks (int_live_tasks' rows), read before the status changes are held: this
    -- model then needs no temporary table and is built while the build holds nothing
    from intermediate.int_tasks_as_of
    where missing_since is null and service_line_id is not null and title is not null
),

pairs as (
    select
        bound.workspace_id,
        bound.service_line_id,
        bound.normalised_title,
        bound.task_id as bound_task_id,
        bound.external_source,
        bound.external_id,
        unbound.task_id as unbound_task_id,
        bound.title as bound_title,
        unbound.title as unbound_title,
        abs(epoch(bound.created_at) - epoch(unbound.created_at)) / 3600.0 as hours_apart
    from tasks as bound
    inner join tasks as unbound
        on bound.service_line_id = unbound.service_line_id
        and bound.normalised_title = unbound.normalised_title
        and bound.external_id is not null
        and unbound.external_id is null
        and abs(epoch(bound.created_at) - epoch(unbound.created_at)) <= 7 * 86400
    where bound.normalised_title <> ''
)

select * from pairs
