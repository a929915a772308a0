-- The service-line names configured in velocity.toml ([[service_lines]] id, name), passed to the
-- build as a table (BuildSettings.service_lines). Renames and casts only.
with source as (
    select * from config_service_lines
),

renamed as (
    select
        id::varchar as service_line_id,
        name::varchar as service_line_name
    from source
)

select * from renamed
