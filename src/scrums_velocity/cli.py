"""The ``velocity`` command line: parses arguments and delegates to the library.

Expected failures are ``VelocityError``s: printed as one ``Error: ...`` line on stderr, with the
error's exit code (see ``errors.py``). Nothing here computes anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any

import typer

from scrums_velocity import __version__
from scrums_velocity.errors import ConfigError, VelocityError
from scrums_velocity.observe import setup_logging

app = typer.Typer(
    name="velocity",
    help="Delivery-velocity analytics for the Scrums.com Tasks API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click errors: a usage error is "Usage: ..." and one "Error: ..." line, like every
    # other failure (rich would draw a box around it).
    rich_markup_mode=None,
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


DUCKDB_INTERRUPTED = "Query interrupted"


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected failures into one line and an exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VelocityError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except RuntimeError as exc:
            # DuckDB takes a Ctrl-C during a query as its own: it stops the query and raises this
            # (a plain RuntimeError, not one of its errors), from whichever command was running
            if str(exc) != DUCKDB_INTERRUPTED:
                raise
            _fail("interrupted", 130)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"velocity {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Delivery-velocity analytics for the Scrums.com Tasks API."""


def _parse_time(value: str | None, flag: str) -> datetime | None:
    from scrums_velocity.times import parse_instant

    return None if value is None else parse_instant(value, flag)


def _overlay(base, /, **flags):
    """``base`` (a config model) with the flags that were given (not None, not empty) over it."""
    return base.model_copy(update={k: v for k, v in flags.items() if v not in (None, [], ())})


@app.command("extract")
@handle_errors
def extract_cmd(
    api_url: str | None = typer.Option(
        None, envvar="SCRUMS_API_URL", help="Base URL of the Tasks API [env SCRUMS_API_URL]."
    ),
    workspace: list[str] = typer.Option([], "--workspace", "-w", help="WS-* to extract; repeat."),
    service_line: list[str] = typer.Option([], help="Only these LIN-* (narrows the listing)."),
    project: list[str] = typer.Option([], help="Only these PROJ-* (narrows the listing)."),
    data_dir: Path | None = typer.Option(None, help="Local state: staging, lock [config; data]."),
    lake: str | None = typer.Option(
        None, help="The lake: a path or s3://bucket/prefix [config; <data-dir>/lake]."
    ),
    full: bool = typer.Option(False, "--full", help="Refetch every task's detail."),
    concurrency: int | None = typer.Option(None, min=1, max=256, help="Requests in flight [16]."),
    max_rps: float | None = typer.Option(None, min=0.01, help="Client-side rate limit (req/s)."),
    timeout: float | None = typer.Option(None, min=0.01, help="Connect/read timeout, s [15]."),
    deadline: float | None = typer.Option(None, min=0.01, help="Whole-request deadline, s [30]."),
    max_attempts: int | None = typer.Option(None, min=1, help="Attempts per request [6]."),
    strict: bool = typer.Option(False, "--strict", help="Exit non-zero if any record is rejected."),
    allow_http: bool = typer.Option(False, "--allow-http", help="Allow http:// to non-loopback."),
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to use."),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
) -> None:
    """Extract tasks and their history into the lake (incremental by default).

    Settings come from velocity.toml (when present) with these flags over them."""
    from scrums_velocity.config import load_config
    from scrums_velocity.extract import ClientSettings, ExtractOptions, extract
    from scrums_velocity.lake import resolve_location

    setup_logging(log_json)
    cfg = load_config(config)
    api = _overlay(
        cfg.api,
        url=api_url,
        workspaces=list(workspace),
        service_lines=list(service_line),
        projects=list(project),
        concurrency=concurrency,
        max_rps=max_rps,
        timeout_s=timeout,
        deadline_s=deadline,
        max_attempts=max_attempts,
        allow_http=allow_http or None,
    )
    if not api.url:
        raise ConfigError("no API URL: pass --api-url or set SCRUMS_API_URL")
    cfg = _overlay(cfg, api=api, data_dir=data_dir, lake=lake)
    options = ExtractOptions(
        data_dir=cfg.data_dir,
        workspaces=tuple(api.workspaces),
        service_lines=tuple(api.service_lines),
        projects=tuple(api.projects),
        full=full,
        strict=strict,
        lake=cfg.lake,
    )
    result = extract(ClientSettings.from_config(cfg), options)
    typer.echo(result.summary())
    snapshot = f" (snapshot {result.snapshot.run_id})" if result.snapshot else ""
    typer.echo(f"lake: {resolve_location(cfg.lake, cfg.data_dir)}{snapshot}")


@app.command("build")
@handle_errors
def build_cmd(
    data_dir: Path | None = typer.Option(None, help="Where the warehouse goes [config; data]."),
    lake: str | None = typer.Option(
        None, help="The lake: a path or s3://bucket/prefix [config; <data-dir>/lake]."
    ),
    snapshot: str | None = typer.Option(
        None, help="Build from an earlier lake snapshot: a run id or an ISO time [newest]."
    ),
    timezone: str | None = typer.Option(None, help="IANA time zone of weeks and days [UTC]."),
    baseline_weeks: int | None = typer.Option(None, min=1, help="K: weeks in a baseline [12]."),
    as_of: str | None = typer.Option(None, help="Reference time, ISO (default: last extraction)."),
    engine: str | None = typer.Option(
        None, help="What computes the models: duckdb or spark [config; duckdb]."
    ),
    spark_master: str | None = typer.Option(
        None, help="Spark master URL, or sc://host:port for Spark Connect [local[*]]."
    ),
    profile: str | None = typer.Option(
        None, help="Write each computed model's query profile (JSON) into this folder."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to use."),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
) -> None:
    """Build the DuckDB warehouse (<data-dir>/warehouse.duckdb) from the lake.

    Time zone, baseline and health thresholds come from velocity.toml, these flags over them."""
    from scrums_velocity.config import load_config, revalidate
    from scrums_velocity.models.runner import BuildSettings, build

    setup_logging(log_json)
    if profile is not None and not profile.strip():  # a Path would make it ".": the cwd
        raise ConfigError("--profile needs a folder, e.g. --profile profiles")
    cfg = load_config(config)
    cfg = _overlay(
        cfg,
        data_dir=data_dir,
        lake=lake,
        model=_overlay(
            cfg.model,
            timezone=timezone,
            baseline_weeks=baseline_weeks,
            engine=engine,
            spark_master=spark_master,
        ),
    )
    where = "a flag" if cfg.source == "defaults" else f"{cfg.source} with the flags"
    revalidate(cfg.model_copy(update={"source": where}))  # flags checked like the file's values
    settings = BuildSettings.from_config(
        cfg,
        as_of=_parse_time(as_of, "--as-of"),
        snapshot=snapshot,
        profile=Path(profile) if profile is not None else None,
    )
    result = build(settings)
    typer.echo(result.summary())
    typer.echo(f"warehouse: {result.warehouse}")


@app.command("query")
@handle_errors
def query_cmd(
    sql: str = typer.Argument(..., help="SQL to run against the warehouse (read-only)."),
    data_dir: Path = typer.Option(Path("data"), help="Where the warehouse lives."),
    limit: int = typer.Option(200, min=1, help="Rows to print at most."),
    timeout: float | None = typer.Option(
        None, min=0.001, help="Stop the query after this many seconds [no limit; Ctrl-C stops it]."
    ),
) -> None:
    """Run a read-only SQL query against the warehouse and print the result as a table."""
    from rich.console import Console
    from rich.table import Table

    from scrums_velocity.models.query import run_query

    columns, rows = run_query(data_dir, sql, limit=limit, timeout_s=timeout)
    table = Table(show_lines=False)
    for i, name in enumerate(columns):
        numeric = any(isinstance(r[i], int | float | Decimal) for r in rows) and all(
            r[i] is None or isinstance(r[i], int | float | Decimal) for r in rows
        )
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(width=max(120, 14 * len(columns))).print(table)
    typer.echo(
        f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
        + (" (limit)" if len(rows) == limit else "")
    )


@app.command("shell")
@handle_errors
def shell_cmd(
    data_dir: Path = typer.Option(Path("data"), help="Where the warehouse lives."),
) -> None:
    """Open the DuckDB CLI read-only on the warehouse, with the marts on the search path."""
    import os

    from scrums_velocity.models.query import shell_argv

    argv = shell_argv(data_dir)
    os.execv(argv[0], argv)  # noqa: S606 (a fixed argv: the CLI and the warehouse path)


@app.command("models")
@handle_errors
def models_cmd(
    data_dir: Path = typer.Option(Path("data"), help="Where the warehouse lives."),
) -> None:
    """List the marts analysts query, with their descriptions."""
    from scrums_velocity.models.query import list_marts

    for table, description in list_marts(data_dir):
        typer.echo(f"{table}\n    {description}")


def _parse_week(value: str | None):
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--week must be a date like 2026-11-16; got {value!r}") from None


@app.command("report")
@handle_errors
def report_cmd(
    data_dir: Path | None = typer.Option(
        None, help="Where the warehouse lives [config: data_dir]."
    ),
    week: str | None = typer.Option(None, help="Monday of the week (default: latest complete)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to use."),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
) -> None:
    """Write the HTML report, the email variant, CSV and Parquet for a week (and each lead's)."""
    from scrums_velocity.config import load_config
    from scrums_velocity.report import write_report

    setup_logging(log_json)
    cfg = load_config(config)
    result = write_report(data_dir or cfg.data_dir, cfg, _parse_week(week))
    typer.echo(result.summary())
    typer.echo(f"report: {result.directory / 'index.html'}")


@app.command("email")
@handle_errors
def email_cmd(
    data_dir: Path | None = typer.Option(None, help="Where the reports live [config: data_dir]."),
    week: str | None = typer.Option(None, help="Monday of the week (default: latest report)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to use."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write .eml files instead of sending."),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
) -> None:
    """Email each configured lead the report of their service lines."""
    from scrums_velocity.config import load_config
    from scrums_velocity.report import send_reports

    setup_logging(log_json)
    cfg = load_config(config)
    result = send_reports(cfg, data_dir or cfg.data_dir, _parse_week(week), dry_run=dry_run)
    typer.echo(result.summary())


config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to check."),
) -> None:
    """Print the effective configuration (secrets masked) or explain every invalid field."""
    import json

    from scrums_velocity.config import ConfigInvalid, load_config

    try:
        cfg = load_config(config, require_secrets=True)
    except ConfigInvalid as exc:
        typer.echo(f"Error: {exc.path} is invalid:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    except VelocityError as exc:
        _fail(str(exc), exc.exit_code)
    typer.echo(f"# effective configuration (from {cfg.source} and the environment)")
    typer.echo(json.dumps(cfg.masked(), indent=2, default=str))
    for warning in _service_line_warnings(cfg):
        typer.echo(f"Warning: {warning}", err=True)


def _service_line_warnings(cfg) -> list[str]:
    """Configured LIN ids the warehouse does not know (a typo shows its id instead of a name)."""
    from scrums_velocity.models.query import WAREHOUSE, connect_read_only

    if not (cfg.service_lines or cfg.leads):
        return []
    if not (cfg.data_dir / WAREHOUSE).exists():
        return [f"no warehouse in {cfg.data_dir}: service line ids not checked against it"]
    try:
        con = connect_read_only(cfg.data_dir)
        try:
            known = {
                r[0]
                for r in con.execute(
                    "select distinct service_line_id from marts.lin_velocity_latest"
                ).fetchall()
            }
        finally:
            con.close()
    except (VelocityError, duckdb_error()) as exc:
        return [f"cannot read the warehouse to check service line ids: {exc}"]
    return cfg.unknown_ids(known)


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


lake_app = typer.Typer(help="Inspect and maintain the lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")


@lake_app.command("history")
@handle_errors
def lake_history(
    data_dir: Path = typer.Option(Path("data"), help="The data dir of the default lake."),
    lake: str | None = typer.Option(None, help="The lake: a path or s3://bucket/prefix."),
) -> None:
    """List the lake's snapshots, oldest first: run id, commit time, table versions."""
    from scrums_velocity.lake import open_lake

    snaps = open_lake(data_dir, lake).snapshots()
    if not snaps:
        raise ConfigError(f"no lake snapshots in {lake or data_dir / 'lake'}")
    for snap in snaps:
        versions = " ".join(f"{k}={v}" for k, v in sorted(snap.versions.items()))
        typer.echo(f"{snap.run_id}  {snap.committed_at.isoformat(timespec='seconds')}  {versions}")


@lake_app.command("migrate")
@handle_errors
def lake_migrate(
    data_dir: Path = typer.Option(Path("data"), help="The data dir holding the old lake."),
    lake: str | None = typer.Option(None, help="Where to write it [<data-dir>/lake]."),
) -> None:
    """Convert an old-layout lake (Parquet snapshots behind a symlink) to Delta tables, once."""
    from scrums_velocity.lake import legacy_snapshot, migrate, resolve_location
    from scrums_velocity.lock import data_dir_lock

    old = legacy_snapshot(data_dir)
    if old is None:
        raise ConfigError(f"no old-layout lake in {data_dir}: nothing to migrate")
    with data_dir_lock(data_dir, "velocity lake migrate"):
        snap = migrate(data_dir, resolve_location(lake, data_dir), old)
    typer.echo(f"migrated {old} to {resolve_location(lake, data_dir)} (snapshot {snap.run_id})")


@app.command("nightly")
@handle_errors
def nightly_cmd(
    config: Path | None = typer.Option(None, "--config", "-c", help="velocity.toml to use."),
    data_dir: Path | None = typer.Option(None, help="Overrides data_dir of the configuration."),
    lake: str | None = typer.Option(
        None, help="The lake: a path or s3://bucket/prefix [config; <data-dir>/lake]."
    ),
    email_dry_run: bool = typer.Option(False, "--email-dry-run", help="Write .eml files instead."),
    strict: bool = typer.Option(False, "--strict", help="Fail when any API record is rejected."),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
) -> None:
    """Extract, build, report and email, for cron. Exit codes: see the README."""
    from scrums_velocity.config import load_config
    from scrums_velocity.nightly import run_nightly

    setup_logging(log_json)
    cfg = load_config(config)
    cfg = _overlay(cfg, data_dir=data_dir, lake=lake)
    result = run_nightly(cfg, email_dry_run=email_dry_run, strict=strict)
    typer.echo(result.summary())


@app.command("demo")
@handle_errors
def demo_cmd(
    data_dir: Path = typer.Option(Path("data/demo"), help="Where the demo writes everything."),
    tasks: int = typer.Option(10_000, min=100, help="Synthetic tasks served by the demo API."),
    seed: int = typer.Option(7, help="Seed of the synthetic data."),
) -> None:
    """Run the whole pipeline against the built-in API server and its synthetic data."""
    from scrums_velocity.demo import run_demo

    setup_logging(False, level=30)  # warnings only: the demo prints its own summary
    typer.echo(f"Starting the mock Tasks API with {tasks} synthetic tasks on 127.0.0.1 ...")
    result = run_demo(data_dir, tasks=tasks, seed=seed)
    n = result.nightly
    typer.echo(n.summary())
    for stage in ("extract", "build", "report", "email"):
        if stage in n.messages:
            typer.echo(f"  {stage}: {n.messages[stage]}")
    typer.echo("")
    if n.report_dir is None:  # pragma: no cover - the demo's nightly raised before this
        raise ConfigError("the demo wrote no report")
    typer.echo(f"report:    {n.report_dir / 'index.html'}   (open it in a browser)")
    typer.echo(f"email:     {n.report_dir / 'email.html'} and {n.report_dir / 'outbox'}/*.eml")
    typer.echo(
        f"warehouse: {data_dir / 'warehouse.duckdb'}   (velocity query --data-dir {data_dir} ...)"
    )
    typer.echo(f"lake:      {data_dir / 'lake'}")
    typer.echo("")
    typer.echo("Furthest below baseline (latest complete week):")
    for r in result.slowest.iter_rows(named=True):
        typer.echo(
            f"  {_lin_label(r)}  {r['health']:<9} {r['completed']:>3} done vs usual "
            f"{r['baseline_mean']:.1f}  (ratio {r['velocity_ratio']:.2f})"
        )


def _lin_label(row: dict) -> str:
    """A LIN as leads know it: its configured name and id, or the id alone."""
    name = row.get("service_line_name")
    lin = row["service_line_id"]
    return f"{name} ({lin})" if name and name != lin else lin


@app.command("backtest")
@handle_errors
def backtest_cmd(
    data_dir: Path = typer.Option(Path("data"), help="Where the warehouse lives."),
) -> None:
    """How often the forecasts came true: replayed past forecasts, per LIN and overall."""
    from scrums_velocity.errors import BuildError, first_line
    from scrums_velocity.models.forecast import calibration
    from scrums_velocity.models.query import connect_read_only

    con = connect_read_only(data_dir)
    try:
        rows = con.table("marts.lin_forecast_backtest").pl()
    except duckdb_error() as exc:
        raise BuildError(
            f"cannot read marts.lin_forecast_backtest: {first_line(exc)}; rebuild the "
            "warehouse with 'velocity build' if it is damaged"
        ) from None
    finally:
        con.close()
    if rows.is_empty():
        typer.echo("no backtests yet: the LINs need more than the baseline window of history")
        return
    typer.echo(
        f"{'service line':<16} {'backtests':>9} {'met 50%':>8} {'met 85%':>8} {'met 95%':>8}"
    )
    for (lin,), part in rows.sort("service_line_id").group_by(
        "service_line_id", maintain_order=True
    ):
        c = calibration(part).row(0, named=True)
        typer.echo(
            f"{lin:<16} {c['backtests']:>9} {c['met_p50']:>8.0%} {c['met_p85']:>8.0%} "
            f"{c['met_p95']:>8.0%}"
        )
    c = calibration(rows).row(0, named=True)
    typer.echo(
        f"{'all':<16} {c['backtests']:>9} {c['met_p50']:>8.0%} {c['met_p85']:>8.0%} "
        f"{c['met_p95']:>8.0%}"
    )


@app.command("mock-api")
@handle_errors
def mock_api(
    port: int = typer.Option(8080, help="Port on 127.0.0.1; 0 picks a free one."),
    tasks: int = typer.Option(20_000, min=1, help="Number of synthetic tasks."),
    seed: int = typer.Option(7, help="Seed of the data and of the fault sequence."),
    weeks: int = typer.Option(26, min=2, help="Weeks of history ending at --now."),
    now: str | None = typer.Option(None, help="End of the data, ISO UTC (default: this minute)."),
    service_lines: int | None = typer.Option(None, min=1, help="Service lines (default 5-50)."),
    latency_ms: float = typer.Option(0.0, min=0, help="Added latency per request."),
    rate_limit: float | None = typer.Option(None, min=0.001, help="Token bucket, requests/s."),
    burst: int | None = typer.Option(None, min=1, help="Token bucket size (default 1 s worth)."),
    fault_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of faulty responses."),
    fault_kinds: str = typer.Option(
        "500,502,503,hang,drop,truncated,invalid_json", help="Faults to draw from."
    ),
    hang_seconds: float = typer.Option(30.0, min=0, help="How long a 'hang' fault stalls."),
) -> None:
    """Serve the mock Tasks API with synthetic data on 127.0.0.1."""
    from scrums_velocity.api_server import Knobs, create_app, generate
    from scrums_velocity.api_server.serve import run_forever

    try:
        knobs = Knobs(
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            burst=burst,
            fault_rate=fault_rate,
            fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
            hang_seconds=hang_seconds,
            seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    dataset = generate(
        tasks=tasks,
        seed=seed,
        weeks=weeks,
        now=_parse_time(now, "--now"),
        service_lines=service_lines,
    )

    def announce(base_url: str) -> None:
        typer.echo(f"base_url: {base_url}")
        typer.echo(f"token: {dataset.admin_token}")
        typer.echo(f"workspaces: {','.join(w.id for w in dataset.workspaces)}")
        typer.echo(f"tasks: {dataset.tasks.height}")
        sys.stdout.flush()

    try:
        run_forever(create_app(dataset, knobs), port, announce)
    except OSError as exc:
        raise ConfigError(str(exc)) from None
