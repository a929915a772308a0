-- Every service line has one row per week, without gaps, up to the current week.
select service_line_id, count(*) as weeks, min(week_start) as first, max(week_start) as last
from marts.lin_velocity_weekly
group by service_line_id
-- date_diff('day', ...), not max - min: date - date is BIGINT days in DuckDB, an INTERVAL in Spark
having date_diff('day', min(week_start), max(week_start)) / 7 + 1 <> count(*)
