"""The Spark engine: the same models on a SparkSession (local, a cluster, or Spark Connect).

Models are written once, in DuckDB's dialect; ``translate`` turns one (its build parameters
already bound as literals) into Spark SQL with sqlglot, plus the rewrites below for the DuckDB
idioms sqlglot passes through or gets subtly wrong, and raises ``BuildError`` naming the model
for whatever has no faithful Spark equivalent (better a failed build than a different number).

What the rewrites assume of the session (``SparkEngine`` sets it): ``spark.sql.session.timeZone``
is UTC, so a TIMESTAMP (Spark's instant type) shows its UTC wall time when cast to
TIMESTAMP_NTZ, DATE or DOUBLE, as DuckDB's TIMESTAMPTZ does under ``SET TimeZone='UTC'``.

Tables: ``schema.name`` (``staging.stg_tasks``) is the temporary view ``schema__name``; the
lake's ``lake_<name>`` and configuration tables keep their bare names.

pyspark and sqlglot are imported inside functions: importing this module costs nothing, and
the project without the ``spark`` extra still imports it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from scrums_velocity.errors import BuildError
from scrums_velocity.models.engine import LakeSource, Materialized, PartitionFunction

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession
    from sqlglot import exp

SCHEMAS = ("staging", "intermediate", "marts")

# The settings measured for this project's machines (shared notes: machine-facts.md); a
# configuration's own [spark] settings override them, except the session time zone, which the
# translation depends on.
DEFAULT_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # the lake's workspace_id=WS-... directories are strings whatever they look like
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    # Spark 4.3's ReorderJoin fails an internal assertion ("The Spark SQL phase optimization
    # failed with an internal error") on int_live_tasks when int_tasks_as_of is a view (a
    # cross join with the one-row bounds CTE, then left joins); the models' joins are written in
    # the order they should run, so the rule is excluded.
    "spark.sql.optimizer.excludedRules": "org.apache.spark.sql.catalyst.optimizer.ReorderJoin",
}
# In local mode only: few shuffle partitions (the default 200 costs seconds per query on 2
# cores); a cluster keeps its own setting.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "2",
    # local mode's one JVM is driver and executor: the default 1g ran out of heap collecting a
    # 1M-task build's task-level marts (measured); the marts come back to the driver
    "spark.driver.memory": "4g",
    "spark.driver.maxResultSize": "2g",
    # the engine makes no managed tables, but the catalog creates its folder, by default
    # ./spark-warehouse in whatever folder the build runs from
    "spark.sql.warehouse.dir": os.path.join(
        tempfile.gettempdir(), "scrums-velocity-spark-warehouse"
    ),
}
INSTALL_HINT = "install the spark extra: make spark"


def view_name(table: str) -> str:
    """``staging.stg_tasks`` -> ``staging__stg_tasks`` (the temporary view Spark reads)."""
    schema, _, name = table.partition(".")
    return f"{schema}__{name}" if name else table


# ---------------------------------------------------------------------------------------------
# Translation


class _Untranslatable(Exception):
    """A construct with no faithful Spark equivalent (the message says which)."""


def translate(sql: str, table: str, *, named_columns: bool = True) -> str:
    """One model's SELECT (DuckDB dialect, literals bound) as Spark SQL, or BuildError.

    With ``named_columns`` (a model), every column of the result must have a name of its own:
    DuckDB and Spark name an unaliased expression differently (``count_star()``/``count(1)``)."""
    try:
        import sqlglot
        from sqlglot.errors import ErrorLevel, SqlglotError
    except ImportError:
        raise BuildError(f"the spark engine needs sqlglot: {INSTALL_HINT}") from None
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
        if len(statements) != 1:
            raise _Untranslatable(f"expected one SELECT, found {len(statements)} statements")
        if named_columns:
            _check_named(cast("exp.Expression", statements[0]))
        tree = _rewrite(cast("exp.Expression", statements[0]))
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except _Untranslatable as exc:
        raise BuildError(f"model {table} cannot run on Spark: {exc}") from None
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"model {table} cannot run on Spark: {first}") from None


def _check_named(tree: exp.Expression) -> None:
    from sqlglot import exp

    while isinstance(tree, exp.SetOperation | exp.Subquery):
        tree = tree.this
    if not isinstance(tree, exp.Select):
        raise _Untranslatable(f"expected a SELECT, found {type(tree).__name__}")
    for projection in tree.expressions:
        if not isinstance(projection, exp.Alias | exp.Column | exp.Star):
            raise _Untranslatable(
                f"column {projection.sql('duckdb')[:60]} has no name (name it with AS: "
                "DuckDB and Spark name expressions differently)"
            )


def _rewrite(tree: exp.Expression) -> exp.Expression:
    _reject(tree)
    tree = _expand_union_by_name(tree)
    tree = tree.transform(_qualify_with_star, copy=False)
    return _bottom_up(tree)


def _qualify_with_star(node: exp.Expression) -> exp.Expression:
    """``SELECT * ... QUALIFY w = 1``: sqlglot's rewrite for Spark returns its helper column
    ``_w`` with the star (and repeats named columns next to it), so the rows come out with
    other columns than DuckDB's. Filter in a subquery and drop the helpers with ``* EXCEPT``."""
    from sqlglot import exp

    if not (
        isinstance(node, exp.Select)
        and node.args.get("qualify") is not None
        and any(isinstance(p, exp.Star) for p in node.expressions)
    ):
        return node
    if any(node.args.get(k) for k in ("order", "limit", "offset", "distinct")):
        raise _Untranslatable("SELECT * ... QUALIFY with ORDER BY, LIMIT or DISTINCT")
    condition = node.args["qualify"].this.copy()
    inner = node.copy()
    inner.set("qualify", None)
    helpers = []
    for i, window in enumerate(list(condition.find_all(exp.Window))):
        name = f"_qualify_{i}"
        helpers.append(exp.to_identifier(name))
        inner.select(exp.alias_(window.copy(), name), copy=False)
        window.replace(exp.column(name))
    outer = exp.select(exp.Star(except_=[exp.column(h) for h in helpers])).from_(
        exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("_qualified")))
    )
    return outer.where(condition)


def _bottom_up(node: exp.Expression) -> exp.Expression:
    """``_rewrite_node`` applied to every node, children first (so a rewrite sees rewritten
    arguments, and the arguments of a rewritten node are rewritten too)."""
    for child in list(node.iter_expressions()):
        _bottom_up(child)
    new = _rewrite_node(node)
    if new is not node and node.parent is not None:
        node.replace(new)
    return new


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _parse(text: str) -> exp.Expression:
    import sqlglot

    return cast("exp.Expression", sqlglot.parse_one(text, read="spark"))


def _reject(tree: exp.Expression) -> None:
    """Constructs that sqlglot would pass through or that mean something else on Spark."""
    from sqlglot import exp

    for node in tree.walk():
        if isinstance(node, exp.Join) and str(node.args.get("method") or "").upper() == "ASOF":
            raise _Untranslatable(
                "ASOF JOIN (sqlglot passes it through; write it as a join on the latest "
                "earlier row, e.g. max(...) group by, or a window)"
            )
        if isinstance(node, exp.ReadParquet | exp.ReadCSV) or (
            isinstance(node, exp.Table) and isinstance(node.this, exp.Func)
        ):
            raise _Untranslatable(
                f"table function {node.sql('duckdb')[:60]} (models read lake_* tables)"
            )
        if isinstance(node, exp.DateDiff | exp.TimestampDiff | exp.DatetimeDiff) and not (
            isinstance(node, exp.DateDiff) and _unit(node) == "DAY"
        ):
            raise _Untranslatable(
                "date_diff/datediff other than in days (DuckDB counts boundaries crossed, "
                "Spark whole units: write (epoch(b) - epoch(a)) / 3600.0 or date_diff('day', ...))"
            )
        if isinstance(node, exp.TimeToStr | exp.StrToTime | exp.StrToDate):
            raise _Untranslatable(
                "strftime/strptime (format codes differ between DuckDB and Spark)"
            )
        if isinstance(node, exp.PercentileDisc) or (
            isinstance(node, exp.PercentileCont) and isinstance(node.expression, exp.Array)
        ):
            raise _Untranslatable("quantile_disc / quantile_cont over a list of quantiles")
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
            if name in _NO_SPARK_EQUIVALENT:
                raise _Untranslatable(_NO_SPARK_EQUIVALENT[name])
        if isinstance(node, exp.GroupingSets) and any(
            isinstance(e, exp.Tuple) and not e.expressions for e in node.expressions
        ):
            raise _Untranslatable(
                "GROUPING SETS with the empty set (): over no rows DuckDB still gives the total "
                "row, Spark none; add the total as a global aggregate (union all)"
            )
        if isinstance(node, exp.Star) and (node.args.get("replace") or node.args.get("rename")):
            raise _Untranslatable("SELECT * REPLACE/RENAME (Spark has only * EXCEPT)")
        if isinstance(node, exp.Table) and node.args.get("db"):
            db = node.args["db"].name
            if db not in SCHEMAS or node.args.get("catalog"):
                raise _Untranslatable(f"table {node.sql('duckdb')} is not a model or lake table")


_NO_SPARK_EQUIVALENT = {
    "lgamma": "lgamma() (Spark has no log-gamma; for ln(k!) write "
    "coalesce(list_sum(list_transform(range(1, k + 1), lambda j: ln(j))), 0))",
    "gamma": "gamma() (Spark has none)",
    "list_reduce": "list_reduce() (write list_sum/list_transform)",
    "getvariable": "getvariable() (the runner binds build parameters before translation)",
}


def _rewrite_node(node: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    # schema.name -> the temporary view schema__name, keeping ``name`` as the qualifier
    if isinstance(node, exp.Table) and node.args.get("db"):
        db, name = node.args["db"].name, node.name
        alias = node.args.get("alias")
        new = exp.Table(this=exp.to_identifier(f"{db}__{name}"))
        new.set("alias", alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(name)))
        return new

    # timezone('Zone', x): an instant's wall time in Zone (TIMESTAMP), or a wall time in Zone
    # as an instant (x a TIMESTAMP, i.e. written ``...::timestamp``)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "timezone":
        if len(node.expressions) != 2:
            raise _Untranslatable("timezone() with other than two arguments")
        zone, value = node.expressions
        if _is_naive_timestamp(value):
            return _fn("to_utc_timestamp", exp.cast(value, "timestamp", dialect="spark"), zone)
        local = exp.cast(
            _fn("from_utc_timestamp", value, zone),
            exp.DataType.build("timestamp_ntz", dialect="spark"),
        )
        if _is_instant(value):
            return local
        # A column or expression taken for a TIMESTAMPTZ (the lake's and staging's timestamps
        # are): fail loudly on Spark if it is not one (typeof() is folded when planning)
        message = (
            "timezone(zone, x) of an x that is not a TIMESTAMPTZ: "
            "write x::timestamp or x::timestamptz"
        )
        return exp.Case(
            ifs=[
                exp.If(
                    this=exp.NEQ(
                        this=_fn("typeof", value.copy()), expression=exp.Literal.string("timestamp")
                    ),
                    true=_fn("raise_error", exp.Literal.string(message)),
                )
            ],
            default=local,
        )
    if isinstance(node, exp.AtTimeZone | exp.ConvertTimezone):
        raise _Untranslatable(
            "AT TIME ZONE / convert_timezone (write timezone('Zone', x), which is translated)"
        )

    # date_diff('day', a, b): midnights crossed, i.e. the difference of the (UTC) dates
    if isinstance(node, exp.DateDiff) and _unit(node) == "DAY":
        return _fn(
            "datediff",
            exp.cast(node.this, "date", dialect="spark"),
            exp.cast(node.expression, "date", dialect="spark"),
        )

    # epoch(x): DOUBLE seconds with microseconds (sqlglot's unix_timestamp drops them)
    if isinstance(node, exp.TimeToUnix):
        return _epoch(node.this)

    # days of the week: DuckDB's dow is 0 (Sunday) to 6, isodow 1 (Monday) to 7; Spark's
    # dayofweek is 1 (Sunday) to 7 (and sqlglot's isodow for Spark is off by one)
    if isinstance(node, exp.Extract):
        part = node.name.upper()
        if part == "EPOCH":
            return _epoch(node.expression)
        if part in ("DOW", "DAYOFWEEK", "WEEKDAY"):
            return exp.paren(
                exp.Sub(this=_fn("dayofweek", node.expression), expression=exp.Literal.number(1))
            )
        if part in ("ISODOW", "DAYOFWEEK_ISO"):
            return exp.paren(
                exp.Add(this=_fn("weekday", node.expression), expression=exp.Literal.number(1))
            )
    if isinstance(node, exp.DayOfWeekIso):
        return exp.paren(exp.Add(this=_fn("weekday", node.this), expression=exp.Literal.number(1)))
    if isinstance(node, exp.DayOfWeek):
        return exp.paren(
            exp.Sub(this=_fn("dayofweek", node.this), expression=exp.Literal.number(1))
        )

    # list(x) / array_agg(x): DuckDB keeps nulls, Spark's collect_list drops them (a struct
    # of one null field is not null); an ordered list has no Spark equivalent
    if isinstance(node, exp.ArrayAgg):
        if isinstance(node.this, exp.Order | exp.Distinct) or isinstance(node.parent, exp.Window):
            raise _Untranslatable(
                "list()/array_agg() with ORDER BY or DISTINCT, or over a window (Spark's "
                "collect_list ignores the order; sort the list: list_sort(list(x)))"
            )
        wrapped = _fn("collect_list", _fn("named_struct", exp.Literal.string("v"), node.this))
        return _parse("transform(__list__, _agg_e -> _agg_e.v)").transform(
            lambda n: wrapped if isinstance(n, exp.Column) and n.name == "__list__" else n
        )

    # unnest(list)::T in a projection: Spark refuses a generator inside an expression, so the
    # cast moves into the list
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Unnest | exp.Explode):
        generator = node.this
        lists = generator.expressions if isinstance(generator, exp.Unnest) else [generator.this]
        if len(lists) != 1:
            raise _Untranslatable("unnest() of several lists")
        element = exp.to_identifier("_unnest_e")
        cast = exp.Lambda(
            this=exp.Cast(this=exp.column(element), to=node.to.copy()), expressions=[element]
        )
        return exp.Explode(this=_fn("transform", lists[0], cast))

    # decimal literals: DuckDB divides DECIMALs as DOUBLE, Spark keeps DECIMAL(p, s)
    if (
        isinstance(node, exp.Literal)
        and node.is_number
        and not node.is_int
        and not isinstance(node.parent, exp.Interval)
    ):
        return _double_literal(node.this)

    # quantile_cont(x, q) / median(x): exact, linearly interpolated; over a window frame Spark
    # refuses percentile, so the frame's sorted values are interpolated by hand
    if isinstance(node, exp.PercentileCont | exp.Median):
        quantile = node.expression if isinstance(node, exp.PercentileCont) else _double(0.5)
        if isinstance(node.parent, exp.Window) and node.parent.this is node:
            return node  # handled at the window (below)
        return _fn("percentile", node.this, quantile)
    if (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.PercentileCont | exp.Median)
        and node.args.get("over")
    ):
        agg = node.this
        quantile = agg.expression if isinstance(agg, exp.PercentileCont) else _double(0.5)
        return _window_quantile(node, agg.this, quantile)

    # arg_max/max_by/min_by: DuckDB skips rows whose value or key is null; Spark's max_by
    # returns the value at the max key even when that value is null
    if isinstance(node, exp.ArgMax | exp.ArgMin):
        if isinstance(node.parent, exp.Window) or (
            isinstance(node.parent, exp.Filter) and isinstance(node.parent.parent, exp.Window)
        ):
            raise _Untranslatable("arg_max/max_by/min_by over a window")
        name = "max_by" if isinstance(node, exp.ArgMax) else "min_by"
        call = _fn(name, node.this, node.expression)
        keep = exp.and_(
            exp.Not(this=exp.Is(this=node.this.copy(), expression=exp.Null())),
            exp.Not(this=exp.Is(this=node.expression.copy(), expression=exp.Null())),
        )
        if isinstance(node.parent, exp.Filter):
            where = node.parent.expression
            where.set("this", exp.and_(exp.paren(where.this.copy()), keep))
            return call
        return exp.Filter(this=call, expression=exp.Where(this=keep))

    # regexp_replace(s, p, r, 'g'): Spark always replaces every match, with Java's regexes
    if isinstance(node, exp.RegexpReplace):
        modifiers = node.args.get("modifiers")
        flags = modifiers.name if isinstance(modifiers, exp.Literal) else None
        if modifiers is not None and flags is None:
            raise _Untranslatable("regexp_replace with non-literal options")
        if not flags or "g" not in flags or set(flags) - set("gi"):
            raise _Untranslatable(
                "regexp_replace without the 'g' option (Spark replaces every match)"
            )
        replacement = node.args.get("replacement")
        if not isinstance(replacement, exp.Literal) or re.search(r"[\\$]", replacement.name):
            raise _Untranslatable("regexp_replace with back-references in the replacement")
        pattern = node.expression
        if "i" in flags:
            if not isinstance(pattern, exp.Literal):
                raise _Untranslatable("regexp_replace 'i' with a non-literal pattern")
            pattern = exp.Literal.string("(?i)" + pattern.name)
        return _fn("regexp_replace", node.this, pattern, replacement)

    # format('{} ... {:.1f}', a, b): concatenated pieces; {:.Nf} rounds the exact binary
    # value half-to-even like DuckDB's fmt (Java's format_string rounds half up)
    if isinstance(node, exp.Format):
        return _format(node)

    # range(a, b) over integers: [a, b) (Spark's sequence counts down when b < a)
    if isinstance(node, exp.GenerateSeries):
        return _series(node)

    # list_sum(list): null for an empty or all-null list, like DuckDB (as DOUBLE)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in ("list_sum", "array_sum"):
        (values,) = node.expressions
        return _parse(
            "aggregate(__list__, CAST(NULL AS DOUBLE), (_sum_acc, _sum_x) -> CASE "
            "WHEN _sum_x IS NULL THEN _sum_acc WHEN _sum_acc IS NULL THEN CAST(_sum_x AS DOUBLE) "
            "ELSE _sum_acc + _sum_x END)"
        ).transform(lambda n: values if isinstance(n, exp.Column) and n.name == "__list__" else n)

    return node


def _epoch(value: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    micros = _fn("unix_micros", exp.cast(value, "timestamp", dialect="spark"))
    return exp.Div(this=micros, expression=_double(1_000_000))


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "DAY").upper()


def _double(value: float | int) -> exp.Expression:
    return _double_literal(repr(float(value)))


def _double_literal(text: str) -> exp.Expression:
    from sqlglot import exp

    return exp.cast(exp.Literal.number(text), "double", dialect="spark")


def _is_naive_timestamp(node: exp.Expression) -> bool:
    """Whether DuckDB types ``node`` TIMESTAMP (a wall time): an explicit ``::timestamp`` cast,
    or the result of ``timezone()`` / ``date_trunc`` of one. Columns count as TIMESTAMPTZ (the
    lake's and the staging models' timestamps all are)."""
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Cast):
        return node.to.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "timezone":
        return not _is_naive_timestamp(node.expressions[1])
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
        return _is_naive_timestamp(node.this)
    return False


def _is_instant(node: exp.Expression) -> bool:
    """Whether ``node`` is visibly a TIMESTAMPTZ: an explicit ``::timestamptz`` cast."""
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.TIMESTAMPTZ


def _window_quantile(
    window: exp.Window, value: exp.Expression, quantile: exp.Expression
) -> exp.Expression:
    """quantile_cont(value, q) over a frame, as Spark allows: the frame's non-null values
    sorted, interpolated at (n - 1) * q (DuckDB's and Spark's percentile definition)."""
    from sqlglot import exp

    if not (isinstance(quantile, exp.Literal | exp.Cast)):
        raise _Untranslatable("quantile_cont over a window with a non-constant quantile")
    frame = window.copy()
    frame.set("this", _fn("collect_list", exp.cast(value.copy(), "double", dialect="spark")))
    sorted_values = _fn("array_sort", frame).sql("spark")
    q = quantile.sql("spark")
    n = f"size({sorted_values})"
    pos = f"(({n} - 1) * {q})"
    low = f"element_at({sorted_values}, CAST(floor({pos}) AS INT) + 1)"
    high = f"element_at({sorted_values}, CAST(ceil({pos}) AS INT) + 1)"
    return _parse(
        f"CASE WHEN {n} = 0 THEN CAST(NULL AS DOUBLE) "
        f"ELSE {low} + ({pos} - floor({pos})) * ({high} - {low}) END"
    )


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def _format(node: exp.Format) -> exp.Expression:
    from sqlglot import exp

    template = node.this
    if not isinstance(template, exp.Literal) or not template.is_string:
        raise _Untranslatable("format() with a non-literal format string")
    args = list(node.expressions)
    pieces: list[exp.Expression] = []
    text, pos, used = template.name, 0, 0
    literal = ""
    for match in _PLACEHOLDER.finditer(text):
        literal += text[pos : match.start()]
        pos = match.end()
        if match.group(0) in ("{{", "}}"):
            literal += match.group(0)[0]
            continue
        spec = match.group(1)
        if used >= len(args):
            raise _Untranslatable("format() with more placeholders than arguments")
        arg = args[used]
        used += 1
        if literal:
            pieces.append(exp.Literal.string(literal))
            literal = ""
        if spec == "":
            # exact for integers and strings (DuckDB and Spark print doubles differently)
            pieces.append(exp.cast(arg, "string", dialect="spark"))
        elif fixed := re.fullmatch(r":\.(\d+)f", spec):
            digits = exp.Literal.number(int(fixed.group(1)))
            number = _fn("format_number", exp.cast(arg, "double", dialect="spark"), digits)
            pieces.append(_fn("replace", number, exp.Literal.string(","), exp.Literal.string("")))
        else:
            raise _Untranslatable(f"format() placeholder {{{spec}}} (only {{}} and {{:.Nf}})")
    literal += text[pos:]
    if literal:
        pieces.append(exp.Literal.string(literal))
    if used != len(args):
        raise _Untranslatable("format() with more arguments than placeholders")
    if not pieces:
        return exp.Literal.string("")
    return _fn("concat", *pieces)  # null when any argument is null, as DuckDB's format()


def _series(node: exp.GenerateSeries) -> exp.Expression:
    from sqlglot import exp

    start, end, step = node.args.get("start"), node.args.get("end"), node.args.get("step")
    if start is None or end is None:
        raise _Untranslatable("generate_series/range without a start and an end")
    exclusive = bool(node.args.get("is_end_exclusive"))
    if step is not None and not (
        isinstance(step, exp.Interval)
        or (isinstance(step, exp.Literal) and step.is_int and int(step.name) > 0)
    ):
        raise _Untranslatable("generate_series/range with a non-constant or negative step")
    if exclusive:
        if step is not None:
            raise _Untranslatable(
                "range() with a step (write generate_series, which includes its end)"
            )
        # [start, end) of integers, empty when end <= start
        seq = _fn("sequence", start, end)
        return _parse("filter(__seq__, _range_i -> _range_i < __end__)").transform(
            lambda n: (
                seq
                if isinstance(n, exp.Column) and n.name == "__seq__"
                else (end.copy() if isinstance(n, exp.Column) and n.name == "__end__" else n)
            )
        )
    # [start, end] (DuckDB: empty when end < start; Spark's sequence would count down)
    args = [start, end] + ([step] if step is not None else [])
    seq = _fn("sequence", *args)
    return exp.If(
        this=exp.LTE(this=start.copy(), expression=end.copy()),
        true=seq,
        false=exp.Null(),
    )


def _expand_union_by_name(tree: exp.Expression) -> exp.Expression:
    """``a UNION ALL BY NAME b``: Spark SQL has no BY NAME, so each side selects the union's
    columns by name (the first side's order, then new ones; NULL where a side lacks one). Works
    when every side's columns are known from the query text (named projections, or ``*`` from a
    CTE or subquery whose columns are)."""
    from sqlglot import exp

    def flatten(node: exp.Expression, distinct: bool) -> list[exp.Expression]:
        if (
            isinstance(node, exp.Union)
            and node.args.get("by_name")
            and bool(node.args.get("distinct")) == distinct
        ):
            return flatten(node.this, distinct) + flatten(node.expression, distinct)
        return [node]

    ctes: dict[str, exp.Expression] = {}
    for with_ in tree.find_all(exp.With):
        for cte in with_.expressions:
            ctes[cte.alias_or_name] = cte.this

    def columns(node: exp.Expression) -> list[str]:
        while isinstance(node, exp.Subquery | exp.Paren):
            node = node.this
        if isinstance(node, exp.SetOperation):
            if node.args.get("by_name"):
                merged = columns(node.this)
                for name in columns(node.expression):
                    if name not in merged:
                        merged.append(name)
                return merged
            return columns(node.this)
        if not isinstance(node, exp.Select):
            raise _Untranslatable("UNION BY NAME over a side whose columns are unknown")
        names: list[str] = []
        for projection in node.expressions:
            if isinstance(projection, exp.Star):
                from_ = node.args.get("from_") or node.args.get("from")
                if node.args.get("joins") or from_ is None:
                    raise _Untranslatable("UNION BY NAME over SELECT * of a join")
                source = from_.this
                if (
                    isinstance(source, exp.Table)
                    and not source.args.get("db")
                    and (source.name in ctes)
                ):
                    names.extend(columns(ctes[source.name]))
                elif isinstance(source, exp.Subquery):
                    names.extend(columns(source.this))
                else:
                    raise _Untranslatable(
                        f"UNION BY NAME over SELECT * FROM {source.sql('duckdb')} "
                        "(columns unknown; list them)"
                    )
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                raise _Untranslatable("UNION BY NAME over SELECT t.*")
            else:
                name = projection.alias_or_name
                if not name:
                    raise _Untranslatable("UNION BY NAME over an unnamed column")
                names.append(name)
        return names

    def expand(node: exp.Expression) -> exp.Expression:
        if not (isinstance(node, exp.Union) and node.args.get("by_name")):
            return node
        distinct = bool(node.args.get("distinct"))
        sides = flatten(node, distinct)
        side_columns = [columns(side) for side in sides]
        names: list[str] = []
        for cols in side_columns:
            names.extend(c for c in cols if c not in names)
        selects = []
        for i, (side, cols) in enumerate(zip(sides, side_columns, strict=True)):
            projections = [
                exp.column(name, quoted=True) if name in cols else exp.alias_(exp.Null(), name)
                for name in names
            ]
            selects.append(
                exp.select(*projections).from_(
                    exp.Subquery(this=side.copy(), alias=f"_by_name_{i}")
                )
            )
        result: exp.Expression = selects[0]
        for select in selects[1:]:
            result = exp.Union(this=result, expression=select, distinct=distinct)
        for key in ("with_", "with", "order", "limit", "offset"):
            if node.args.get(key) is not None:
                result.set(key, node.args[key])
        return result

    return tree.transform(expand, copy=False)


# ---------------------------------------------------------------------------------------------
# The session

_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The process's SparkSession (created once, then reused): ``local[*]`` by default, a
    cluster master URL, or ``sc://host:port`` for Spark Connect. The machine-measured settings
    apply unless ``conf`` overrides them (the session time zone stays UTC)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is not None:
            return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise BuildError(f"the spark engine needs pyspark: {INSTALL_HINT}") from None
        # Python workers must import the project's packages (pyarrow, the models): in local
        # mode they are this interpreter; on a cluster, whatever PYSPARK_PYTHON names there
        if master is None or master.startswith("local"):
            os.environ["PYSPARK_PYTHON"] = sys.executable
        else:
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        local = master is None or master.startswith("local")
        if local:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname warning
        defaults = {**DEFAULT_CONF, **(LOCAL_CONF if local else {})}
        settings = {**defaults, **(conf or {}), "spark.sql.session.timeZone": "UTC"}
        builder = SparkSession.builder.appName("scrums-velocity")
        remote = master is not None and master.startswith("sc://")
        if master is not None and remote:
            builder = builder.remote(master)
            settings.pop("spark.ui.enabled", None)  # a server setting, not a session one
        else:
            if not _java_available():
                raise BuildError(
                    "the spark engine needs a Java runtime (17) on PATH or JAVA_HOME: "
                    "make spark (installs openjdk-17-jre-headless)"
                )
            if master is not None and master.startswith("spark://"):
                _reach_master(master)
            builder = builder.master(master or "local[*]")
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except ImportError as exc:  # Spark Connect's client packages
            raise BuildError(
                f"Spark Connect needs pyspark's connect packages ({exc.name or _first_line(exc)}): "
                "pip install 'pyspark[connect]'"
            ) from None
        except Exception as exc:
            raise BuildError(
                f"cannot start Spark ({master or 'local[*]'}): {_first_line(exc)}"
            ) from None
        if not remote:
            session.sparkContext.setLogLevel("OFF")  # errors reach the caller as BuildError
        # pyspark logs every failed query's stack trace as JSON; the BuildError says it in a line
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        _SESSION = session
        return session


def _reach_master(master: str, timeout_s: float = 5.0) -> None:
    """Fail at once when no master of a standalone cluster URL (``spark://h1:7077,h2:7077``)
    accepts a connection: Spark's own client retries registering for about 70 s first."""
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return
        except ValueError:
            raise BuildError(f"not a Spark master URL: {master} (spark://host:port)") from None
        except OSError as exc:
            reasons.append(f"{address.strip()}: {exc.strerror or exc}")
    raise BuildError(f"cannot reach the Spark master {master} ({'; '.join(reasons)})")


def _java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return True
    return shutil.which("java") is not None


def _first_line(exc: BaseException) -> str:
    """The line of a Spark error that says what went wrong (its messages run "[ERROR_CLASS]
    what. SQLSTATE: ...; line 1 pos 7;" then the plan; a Py4J error starts with the call)."""
    text = str(exc)
    if "java.lang.OutOfMemoryError" in text:
        return (
            "Spark ran out of Java heap: raise spark.driver.memory (local mode) or "
            "spark.executor.memory in [model] spark_conf"
        )
    if "exception was thrown from the Python worker" in text:
        # a Python model's own error: the traceback's last "SomeError: message" line
        errors = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit)\b.*)$", text, re.M)
        if errors:
            return "in the Python worker: " + errors[-1][:500]
    for line in text.splitlines():
        line = line.strip().removeprefix(": ")
        if not line or line.startswith(("An error occurred while calling", "at ")):
            continue
        line = re.sub(r"^(?:[a-z]+\.)+[A-Za-z]*(?:Exception|Error): ", "", line)
        return line[:500]
    return type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The engine


class SparkEngine:
    """The Engine protocol (engine.py) on a SparkSession: every table a temporary view."""

    name = "spark"

    def __init__(self, session: SparkSession | None = None) -> None:
        self.spark = session if session is not None else spark_session()
        # translate() assumes it (see the module docstring)
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self._views: list[str] = []
        self._cached: list[DataFrame] = []
        self._frames: dict[str, DataFrame] = {}

    # -- registration

    def register_lake(self, source: LakeSource) -> None:
        name = f"lake_{source.name}"
        if source.dataset is not None and not source.files:
            raise BuildError(
                f"lake dataset {source.name}: the spark engine reads Parquet files or URLs its "
                "cluster can read, not an Arrow dataset"
            )
        if not source.files:
            if source.schema is None:
                raise BuildError(f"lake dataset {source.name} has no files and no schema")
            frame = self._from_arrow(source.schema.empty_table())
        else:
            reader = self.spark.read
            if source.schema is not None:
                reader = reader.schema(_spark_schema(source.schema))
            if source.hive_partitioning:
                reader = reader.option("basePath", _base_path(source.name, source.files))
            try:
                frame = reader.parquet(*source.files)
            except Exception as exc:
                raise BuildError(f"lake dataset {source.name}: {_first_line(exc)}") from None
        self._view(name, frame)

    def register_table(self, name: str, data: pa.Table) -> None:
        self._view(name, self._from_arrow(data))

    # -- building

    def create(self, table: str, sql: str, materialized: Materialized) -> None:
        spark_sql = translate(sql, table)
        try:
            frame = self.spark.sql(spark_sql)
            self._materialize(table, frame, materialized)
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"model {table} failed on Spark: {_first_line(exc)}") from None

    def start_python(
        self,
        table: str,
        inputs: Sequence[str],
        partition_by: str | None,
        function: PartitionFunction,
        schema: pa.Schema,
        materialized: Materialized,
    ) -> Callable[[], None]:
        """Spark builds the model at once (its jobs already use every core): the returned
        callable has nothing left to do."""
        try:
            frames = [self.spark.table(view_name(name)) for name in inputs]
            if partition_by is None:
                data = {name: frame.toArrow() for name, frame in zip(inputs, frames, strict=True)}
                result = _conform(function(data), schema, table)
                frame = self._from_arrow(result)
            else:
                frame = self._partitioned(table, inputs, frames, partition_by, function, schema)
            self._materialize(table, frame, materialized)
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"model {table} failed on Spark: {_first_line(exc)}") from None
        return lambda: None

    def _partitioned(
        self,
        table: str,
        inputs: Sequence[str],
        frames: list[DataFrame],
        partition_by: str,
        function: PartitionFunction,
        schema: pa.Schema,
    ) -> DataFrame:
        for name, frame in zip(inputs, frames, strict=True):
            if partition_by not in frame.columns:
                raise BuildError(f"model {table}: input {name} has no column {partition_by}")
        from pyspark.sql.pandas.types import to_arrow_schema

        output = _spark_schema(schema)
        # what Spark takes back from a worker: its own Arrow types (string, not large_string)
        arrow_output = to_arrow_schema(output, timezone="UTC")  # the session time zone
        names = list(inputs)
        if len(frames) == 1:
            (name,) = names

            def one(rows: pa.Table) -> pa.Table:
                return _conform(function({name: rows}), schema, table).cast(arrow_output)

            return frames[0].groupBy(partition_by).applyInArrow(one, output)
        if len(frames) == 2:
            left_name, right_name = names

            def two(left: pa.Table, right: pa.Table) -> pa.Table:
                rows = function({left_name: left, right_name: right})
                return _conform(rows, schema, table).cast(arrow_output)

            left, right = frames
            return (
                left.groupBy(partition_by)
                .cogroup(right.groupBy(partition_by))
                .applyInArrow(two, output)
            )
        raise BuildError(
            f"model {table}: a partitioned Python model reads one or two inputs on Spark "
            f"({len(frames)} given)"
        )

    def _materialize(self, table: str, frame: DataFrame, materialized: Materialized) -> None:
        if materialized in ("temp", "table"):
            # Computed once, here (errors surface at this model), and kept by the executors.
            # A local checkpoint rather than persist(): readers then plan against the stored
            # rows, not the whole upstream plan (measured: the full model graph builds in about
            # a third of the time; and Spark 4.3's optimizer fails an assertion in ReorderJoin
            # on int_live_tasks over persisted int_tasks_as_of).
            frame = frame.localCheckpoint(eager=True)
            self._cached.append(frame)
        self._frames[view_name(table)] = frame
        self._view(view_name(table), frame)

    # -- reading

    def count(self, table: str) -> int:
        try:
            return self.spark.table(view_name(table)).count()
        except Exception as exc:
            raise BuildError(f"model {table} failed on Spark: {_first_line(exc)}") from None

    def to_arrow(self, table: str) -> pa.Table:
        try:
            return self.spark.table(view_name(table)).toArrow()
        except Exception as exc:
            raise BuildError(f"cannot collect {table} from Spark: {_first_line(exc)}") from None

    def rows(self, sql: str, limit: int) -> tuple[list[str], list[tuple]]:
        spark_sql = translate(sql, "query", named_columns=False)
        try:
            frame = self.spark.sql(spark_sql)
            rows = frame.limit(limit).collect()
        except Exception as exc:
            raise BuildError(f"query failed on Spark: {_first_line(exc)}") from None
        return list(frame.columns), [tuple(row) for row in rows]

    def release(self, table: str) -> None:
        name = view_name(table)
        frame = self._frames.pop(name, None)
        if frame is not None and any(c is frame for c in self._cached):
            _release(frame)
            self._cached = [c for c in self._cached if c is not frame]
        self.spark.catalog.dropTempView(name)
        if name in self._views:
            self._views.remove(name)

    def close(self) -> None:
        try:
            for frame in self._cached:
                _release(frame)
            for view in self._views:
                self.spark.catalog.dropTempView(view)
        except Exception:  # noqa: S110 (a JVM that died has nothing left to release)
            pass
        self._cached.clear()
        self._frames.clear()
        self._views.clear()

    # -- helpers

    def _view(self, name: str, frame: DataFrame) -> None:
        frame.createOrReplaceTempView(name)
        if name not in self._views:
            self._views.append(name)

    def _from_arrow(self, data: pa.Table) -> DataFrame:
        # the explicit schema keeps a naive timestamp naive (TIMESTAMP_NTZ), as in DuckDB
        schema = _spark_schema(data.schema)
        if data.num_rows == 0:
            return self.spark.createDataFrame([], schema)
        return self.spark.createDataFrame(data, schema)


def _release(frame: DataFrame) -> None:
    """Drop a local checkpoint's blocks now rather than when the JVM collects them."""
    try:
        frame._jdf.queryExecution().analyzed().rdd().unpersist(False)
    except Exception:  # Spark Connect, or another plan shape: the context cleaner frees it
        frame.unpersist()


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _conform(result: object, schema: pa.Schema, table: str) -> pa.Table:
    """A Python model's rows as ``schema`` (its columns, in order, cast)."""
    if hasattr(result, "to_arrow") and not isinstance(result, pa.Table):
        result = result.to_arrow()  # a polars frame
    if not isinstance(result, pa.Table):
        raise BuildError(f"model {table} returned {type(result).__name__}, not an Arrow table")
    missing = [name for name in schema.names if name not in result.column_names]
    if missing:
        raise BuildError(f"model {table} returned no column {missing[0]}")
    try:
        return result.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BuildError(f"model {table}: its rows do not fit its SCHEMA: {exc}") from None


_PARTITION_DIR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/]*$")


def _base_path(dataset: str, files: Sequence[str]) -> str:
    """The folder holding a hive-partitioned dataset's ``key=value`` directories."""
    roots = set()
    for path in files:
        parts = path.rstrip("/").split("/")[:-1]  # its folders
        index = len(parts)
        while index > 0 and _PARTITION_DIR.match(parts[index - 1]):
            index -= 1
        if index == len(parts):
            raise BuildError(f"lake dataset {dataset}: {path} is not under a key=value folder")
        roots.add("/".join(parts[:index]))
    if len(roots) != 1:
        raise BuildError(f"lake dataset {dataset}: its files are under {len(roots)} roots")
    return roots.pop()
