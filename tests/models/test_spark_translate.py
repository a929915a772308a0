"""DuckDB -> Spark SQL translation (sqlglot, no JVM): each idiom the models use, and the loud
failures for what has no faithful Spark equivalent. Whether a translation means the same is
proved by running it on both engines: test_spark_engine.py (IDIOMS and every model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scrums_velocity.errors import BuildError
from scrums_velocity.models.engine import bind
from scrums_velocity.models.spark import translate, view_name

pytest.importorskip("sqlglot")

MODELS_DIR = Path(__file__).parents[2] / "src" / "scrums_velocity" / "models"
VARIABLES = {
    "as_of": "2026-11-23T09:00:00+00:00",
    "tz": "Europe/London",
    "baseline_weeks": 8,
    "min_baseline_weeks": 4,
    "at_risk_ratio": 0.6,
    "at_risk_p_value": 0.05,
    "watch_ratio": 0.8,
    "lake_url": "/data/lake",
    "lake_snapshot": "run-1",
    "storage_version": "v1.3.0",
    "engine": "spark",
    "built_at": "2026-11-23T09:05:00+00:00",
}
# Models whose SQL uses a construct with no Spark equivalent (rewrites proposed in the report).
UNTRANSLATABLE: dict[str, str] = {}  # model -> the construct Spark lacks (none now)


def spark(sql: str) -> str:
    return translate(sql, "marts.m")


def flat(sql: str) -> str:
    return re.sub(r"\s+", " ", sql)


def test_importing_the_module_loads_neither_pyspark_nor_sqlglot():
    code = (
        "import sys, scrums_velocity.models.spark; "
        "print(any(m.split('.')[0] in ('pyspark', 'sqlglot', 'py4j') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _session_error(prelude: str, env: dict[str, str] | None = None) -> str:
    code = (
        prelude + "\nfrom scrums_velocity.errors import BuildError\n"
        "from scrums_velocity.models.spark import spark_session\n"
        "try:\n    spark_session('local[1]')\nexcept BuildError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def test_without_pyspark_the_session_says_how_to_install_it():
    message = _session_error("import sys; sys.modules['pyspark'] = None")
    assert message == "the spark engine needs pyspark: install the spark extra: make spark"


def test_without_java_the_session_says_how_to_install_it():
    pytest.importorskip("pyspark")
    env = {"PATH": "/nonexistent", "HOME": "/tmp"}
    message = _session_error("", env)
    assert message.startswith("the spark engine needs a Java runtime")
    assert "make spark" in message


def test_the_base_path_of_hive_partitioned_files():
    from scrums_velocity.models.spark import _base_path

    files = [
        "/data/a=b/lake/tasks/workspace_id=WS-1/part-0.parquet",
        "/data/a=b/lake/tasks/workspace_id=WS-2/x=1/part-0.parquet",
        "s3a://bucket/lake/tasks/workspace_id=WS-3/part-0.parquet",
    ]
    assert _base_path("tasks", files[:2]) == "/data/a=b/lake/tasks"
    assert _base_path("tasks", files[2:]) == "s3a://bucket/lake/tasks"
    with pytest.raises(BuildError, match="under 2 roots"):
        _base_path("tasks", files)
    with pytest.raises(BuildError, match="not under a key=value folder"):
        _base_path("tasks", ["/data/lake/tasks/part-0.parquet"])


def test_bind_writes_the_build_parameters_as_literals():
    sql = (
        "select getvariable('as_of')::timestamptz, getvariable('tz'), getvariable('baseline_weeks')"
        " - 1, getvariable('watch_ratio'), getvariable('lake_url')"
    )
    bound = bind(sql, {**VARIABLES, "lake_url": "it's"}, "marts.x")
    assert bound == (
        "select '2026-11-23T09:00:00+00:00'::timestamptz, 'Europe/London', 8 - 1, 0.8, 'it''s'"
    )
    with pytest.raises(BuildError, match=r"model marts\.x reads getvariable\('nope'\)"):
        bind("select getvariable('nope')", VARIABLES, "marts.x")


def test_model_tables_become_views_keeping_their_names_as_qualifiers():
    out = spark(
        "select stg_tasks.task_id, t.x from staging.stg_tasks, intermediate.int_x as t, lake_tasks"
    )
    assert "FROM staging__stg_tasks AS stg_tasks, intermediate__int_x AS t, lake_tasks" in out
    assert view_name("marts.lin_velocity_weekly") == "marts__lin_velocity_weekly"
    with pytest.raises(BuildError, match=r"other\.t is not a model or lake table"):
        spark("select x from other.t")


def test_timezone_both_ways():
    out = spark(
        "select timezone('Europe/London', created_at) as a,"
        " timezone('Europe/London', (week_start + 7)::timestamp) as b from t"
    )
    assert (
        "CASE WHEN TYPEOF(created_at) <> 'timestamp' THEN RAISE_ERROR('timezone(zone, x) of"
        " an x that is not a TIMESTAMPTZ: write x::timestamp or x::timestamptz')"
        " ELSE CAST(FROM_UTC_TIMESTAMP(created_at, 'Europe/London') AS TIMESTAMP_NTZ) END AS a"
    ) in out
    assert (
        "TO_UTC_TIMESTAMP(CAST(CAST((week_start + 7) AS TIMESTAMP_NTZ) AS TIMESTAMP), "
        "'Europe/London') AS b" in out
    )
    with pytest.raises(BuildError, match="AT TIME ZONE"):
        spark("select x at time zone 'UTC' as a from t")


def test_week_start_of_a_local_time():
    out = spark("select date_trunc('week', timezone('UTC', x::timestamptz))::date as w from t")
    assert (
        "CAST(DATE_TRUNC('WEEK', CAST(FROM_UTC_TIMESTAMP(CAST(x AS TIMESTAMP), 'UTC')"
        " AS TIMESTAMP_NTZ)) AS DATE)" in out
    )


def test_epoch_keeps_microseconds_and_decimals_become_doubles():
    out = spark("select (epoch(b) - epoch(a)) / 3600.0 as h, 7 * 86400.0 as s from t")
    assert "UNIX_MICROS(CAST(b AS TIMESTAMP)) / CAST(1000000.0 AS DOUBLE)" in out
    assert "/ CAST(3600.0 AS DOUBLE) AS h" in out
    assert "7 * CAST(86400.0 AS DOUBLE) AS s" in out
    assert "UNIX_TIMESTAMP" not in out


def test_generate_series_and_unnest():
    out = spark("select l, unnest(generate_series(a, b, interval 1 day))::date as day from t")
    assert (
        "EXPLODE(TRANSFORM(IF(a <= b, SEQUENCE(a, b, INTERVAL '1' DAY), NULL), "
        "_unnest_e -> CAST(_unnest_e AS DATE))) AS day" in out
    )
    out = spark("select unnest(['a', 'b']) as s from t")
    assert "EXPLODE(ARRAY('a', 'b')) AS s" in out


def test_range_list_transform_and_list_sum():
    out = spark("select list_sum(list_transform(range(0, n + 1), lambda k: k * 2)) as s from t")
    assert "FILTER(SEQUENCE(0, n + 1), _range_i -> _range_i < n + 1)" in out
    assert "TRANSFORM(" in out
    assert "k -> k * 2" in out
    assert out.startswith("SELECT AGGREGATE(")
    assert "CAST(NULL AS DOUBLE)" in out
    with pytest.raises(BuildError, match="range\\(\\) with a step"):
        spark("select range(0, 10, 2) as r from t")


def test_filter_clause_qualify_group_by_all_nonempty_grouping_sets_pass_through():
    out = spark("select a, count(*) filter (where x) as n from t group by all")
    assert out == "SELECT a, COUNT(*) FILTER(WHERE x) AS n FROM t GROUP BY ALL"
    out = spark("select a, b from t qualify row_number() over (partition by a order by b) = 1")
    assert out == (
        "SELECT a, b FROM (SELECT a, b, ROW_NUMBER() OVER (PARTITION BY a ORDER BY b NULLS LAST)"
        " AS _w FROM t) AS _t WHERE _w = 1"
    )
    # with a star, the helper column must not come out with the rows
    out = spark("select *, 1 as k from t qualify row_number() over (order by b) = 1 and k > 0")
    assert out == (
        "SELECT * EXCEPT (_qualify_0) FROM (SELECT *, 1 AS k, ROW_NUMBER() OVER (ORDER BY b"
        " NULLS LAST) AS _qualify_0 FROM t) AS _qualified WHERE _qualify_0 = 1 AND k > 0"
    )
    out = spark("select a, b, count(*) as n from t group by grouping sets ((a, b), (b))")
    assert "GROUP BY GROUPING SETS ((a, b), (b))" in out


def test_quantiles():
    out = spark("select quantile_cont(x, 0.85) as p, median(y) as m from t")
    assert "PERCENTILE(x, CAST(0.85 AS DOUBLE)) AS p" in out
    assert "PERCENTILE(y, CAST(0.5 AS DOUBLE)) AS m" in out
    out = spark(
        "select median(x) over w as m from t"
        " window w as (partition by a order by b rows between 8 preceding and 1 preceding)"
    )
    assert "ARRAY_SORT(COLLECT_LIST(CAST(x AS DOUBLE)) OVER w)" in out
    assert "MEDIAN" not in out
    with pytest.raises(BuildError, match="quantile_disc"):
        spark("select quantile_disc(x, 0.5) as q from t")


def test_arg_max_family_skips_null_values_like_duckdb():
    out = spark(
        "select arg_max(a, b) as x, min_by(a, b) as y,"
        " max_by(a, b) filter (where b < 3) as z from t"
    )
    assert "MAX_BY(a, b) FILTER(WHERE NOT a IS NULL AND NOT b IS NULL) AS x" in out
    assert "MIN_BY(a, b) FILTER(WHERE NOT a IS NULL AND NOT b IS NULL) AS y" in out
    assert "MAX_BY(a, b) FILTER(WHERE (b < 3) AND (NOT a IS NULL AND NOT b IS NULL)) AS z" in out


def test_format():
    out = spark("select format('{} done, {:.1f}/week {{x}}', n, m) as r from t")
    assert out == (
        "SELECT CONCAT(CAST(n AS STRING), ' done, ', "
        "REPLACE(FORMAT_NUMBER(CAST(m AS DOUBLE), 1), ',', ''), '/week {x}') AS r FROM t"
    )
    with pytest.raises(BuildError, match="placeholder"):
        spark("select format('{:>5}', n) as r from t")
    with pytest.raises(BuildError, match="more placeholders"):
        spark("select format('{} {}', n) as r from t")


def test_regexp_replace():
    out = spark("select regexp_replace(lower(t), '[^\\pL\\pN]+', ' ', 'g') as r from t")
    assert "REGEXP_REPLACE(LOWER(t), '[^\\\\pL\\\\pN]+', ' ') AS r" in out
    assert "'(?i)ab'" in spark("select regexp_replace(t, 'ab', '', 'gi') as r from t")
    with pytest.raises(BuildError, match="without the 'g' option"):
        spark("select regexp_replace(t, 'a', 'b') as r from t")
    with pytest.raises(BuildError, match="back-references"):
        spark("select regexp_replace(t, '(a)', '\\1\\1', 'g') as r from t")


def test_union_all_by_name():
    out = spark(
        "with a as (select 1 as x, 'a' as y), b as (select 'b' as y, 2 as x, true as z)"
        " select * from a union all by name select * from b"
    )
    assert "BY NAME" not in out
    assert out.startswith("WITH a AS")
    assert "SELECT `x`, `y`, NULL AS z FROM (SELECT * FROM a) AS _by_name_0" in out
    assert "UNION ALL SELECT `x`, `y`, `z` FROM (SELECT * FROM b) AS _by_name_1" in out
    with pytest.raises(BuildError, match="columns unknown"):
        spark("select * from lake_tasks union all by name select * from lake_task_versions")


def test_days_of_the_week_count_as_in_duckdb():
    out = spark(
        "select extract(dow from d) as a, isodow(d) as b, extract(epoch from t) as c from x"
    )
    assert out == (
        "SELECT (DAYOFWEEK(d) - 1) AS a, (WEEKDAY(d) + 1) AS b,"
        " UNIX_MICROS(CAST(t AS TIMESTAMP)) / CAST(1000000.0 AS DOUBLE) AS c FROM x"
    )


def test_list_keeps_nulls_and_an_ordered_list_fails():
    out = spark("select list(x) as l from t")
    assert (
        out
        == "SELECT TRANSFORM(COLLECT_LIST(NAMED_STRUCT('v', x)), _agg_e -> _agg_e.v) AS l FROM t"
    )
    with pytest.raises(BuildError, match="ORDER BY"):
        spark("select list(x order by y) as l from t")


def test_date_diff_in_days_is_the_difference_of_dates():
    out = spark("select date_diff('day', a, b) as d from t")
    assert out == "SELECT DATEDIFF(CAST(b AS DATE), CAST(a AS DATE)) AS d FROM t"


def test_casts_dates_and_comparisons():
    out = spark(
        "select x::varchar as a, x::timestamptz as b, x::timestamp as c, x::integer as d,"
        " d + 7 as e, a is distinct from b as f, starts_with(s, 'AGT-') as g,"
        " date '0001-01-01' as h from t"
    )
    for piece in [
        "CAST(x AS STRING) AS a",
        "CAST(x AS TIMESTAMP) AS b",
        "CAST(x AS TIMESTAMP_NTZ) AS c",
        "CAST(x AS INT) AS d",
        "d + 7 AS e",
        "a IS DISTINCT FROM b AS f",
        "STARTSWITH(s, 'AGT-') AS g",
        "CAST('0001-01-01' AS DATE) AS h",
    ]:
        assert piece in out


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("select a.x from a asof join b on a.t >= b.t", "ASOF JOIN"),
        ("select * from read_parquet('x.parquet')", "table function"),
        ("select date_diff('hour', a, b) as d from t", "date_diff"),
        ("select strftime(x, '%W') as w from t", "strftime"),
        ("select lgamma(x) as g from t", "lgamma"),
        ("select a, count(*) as n from t group by grouping sets ((a), ())", "GROUPING SETS"),
        ("select * replace (a + 1 as a) from t", "REPLACE"),
        ("select count(*) from t", "has no name"),
        ("select 1 as a; select 2 as b", "one SELECT"),
        ("select getvariable('tz') as z", "getvariable"),
        ("select from where", ""),
    ],
)
def test_what_does_not_translate_fails_naming_the_model(sql, reason):
    with pytest.raises(BuildError, match=rf"^model marts\.m cannot run on Spark: .*{reason}"):
        spark(sql)


def _models() -> dict[str, str]:
    return {
        f"{layer}.{path.stem}": path.read_text()
        for layer in ("staging", "intermediate", "marts")
        for path in sorted((MODELS_DIR / layer).glob("*.sql"))
    }


@pytest.mark.parametrize("table", sorted(_models()))
def test_every_model_translates_or_names_what_does_not(table):
    sql = bind(_models()[table], VARIABLES, table)
    if table in UNTRANSLATABLE:
        with pytest.raises(
            BuildError, match=rf"model {table} cannot run on Spark: .*{UNTRANSLATABLE[table]}"
        ):
            translate(sql, table)
        return
    out = translate(sql, table)
    assert "getvariable" not in out.lower()
    assert not re.search(r"\b(staging|intermediate|marts)\.", flat(out).split("*/")[-1])
    out = re.sub(r"/\*.*?\*/", "", out, flags=re.S)  # comments and string literals aside
    out = re.sub(r"'(?:[^'\\]|\\.)*'", "''", out)
    for passthrough in (
        "TIMEZONE(",
        "UNIX_TIMESTAMP",
        "BY NAME",
        "LIST_SUM",
        "LGAMMA",
        "FORMAT_STRING",
    ):
        assert passthrough not in out.upper(), f"{table}: {passthrough} reached Spark"


@pytest.mark.parametrize("path", sorted((MODELS_DIR / "tests").glob("*.sql")), ids=lambda p: p.stem)
def test_singular_data_tests_translate(path):
    translate(bind(path.read_text(), VARIABLES, path.stem), path.stem, named_columns=False)
