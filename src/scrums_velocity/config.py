"""``velocity.toml``: the pipeline's configuration, validated with pydantic.

Secrets come from the environment: the API token from ``SCRUMS_API_TOKEN`` (``api.token`` in the
file is accepted but discouraged), the SMTP password from the variable ``smtp.password_env`` names
(default ``VELOCITY_SMTP_PASSWORD``). Both are ``SecretStr``: masked in reprs, in
``velocity config check`` and in every error.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
import unicodedata
import zoneinfo
from email.utils import getaddresses
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scrums_velocity.errors import ConfigError

DEFAULT_PATH = Path("velocity.toml")
# An addr-spec as mail headers carry it unquoted: a dot-atom local part (RFC 5322 atext, no
# quoting, commas, spaces or angle brackets: nothing that could split one To: into two) and a
# DNS name with at least one dot.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = rf"^{_ATEXT}(\.{_ATEXT})*@{_LABEL}(\.{_LABEL})+$"
_LIN = r"^LIN-\d{2}-\d{6}$"
_WS = r"^WS-\d{2}-\d{6}$"


def _id_of(prefix: str, pattern: str):
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"{value!r} is not a {prefix}-YY-NNNNNN id")
        return value

    return AfterValidator(check)


def _no_controls(value: str) -> str:
    """Refuse control characters (newlines, tabs, NUL, DEL, C1, line/paragraph separators).

    Values like these end up in mail headers and file names; a newline there is a header
    injection or a crash while the mail is built."""
    bad = sorted({c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(f"{value!r} contains control characters ({shown})")
    return value


def _email(value: str) -> str:
    _no_controls(value)
    if len(value) > 254 or not re.match(_EMAIL, value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _mailbox(value: str) -> str:
    """``addr@example.com`` or ``Display Name <addr@example.com>``: exactly one address."""
    _no_controls(value)
    parsed = getaddresses([value])
    if len(parsed) != 1 or not re.match(_EMAIL, parsed[0][1]):
        raise ValueError(
            f"{value!r} is not one email address (like 'Velocity <velocity@example.com>')"
        )
    return value


def lead_key(email: str) -> str:
    """The name of a lead's report directory (and ``.eml`` file): one per email address.

    A readable slug of the address plus a hash of the exact lower-case address: two different
    addresses never share a key even when their slugs agree (``a.b@x.com`` and ``a-b@x.com``),
    and the same address in another case is the same lead. Every consumer (report writing,
    email sending, dry-run files) goes through this function.
    """
    exact = email.strip().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", exact).strip("-")[:48].strip("-") or "lead"
    digest = hashlib.sha256(exact.encode("utf-8")).hexdigest()[:16]
    return f"{slug}-{digest}"


Email = Annotated[str, AfterValidator(_email)]
Text = Annotated[str, AfterValidator(_no_controls)]
Mailbox = Annotated[str, AfterValidator(_mailbox)]
WorkspaceId = Annotated[str, _id_of("WS", _WS)]
ServiceLineId = Annotated[str, _id_of("LIN", _LIN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiConfig(_Strict):
    url: Text | None = Field(None, description="Base URL of the Tasks API (env SCRUMS_API_URL)")
    token: SecretStr | None = Field(None, description="Prefer the SCRUMS_API_TOKEN variable")
    workspaces: list[WorkspaceId] = Field(default_factory=list, description="WS-* to extract")
    service_lines: list[ServiceLineId] = Field(
        default_factory=list, description="narrow the listing"
    )
    projects: list[Text] = Field(default_factory=list, description="narrow the listing")
    concurrency: int = Field(16, ge=1, le=256, description="requests in flight")
    max_rps: float | None = Field(None, gt=0, description="client-side rate limit, requests/s")
    timeout_s: float = Field(15.0, gt=0, description="connect and read timeout, s")
    deadline_s: float = Field(30.0, gt=0, description="whole-request deadline, s")
    max_attempts: int = Field(6, ge=1, description="attempts per request, then the run fails")
    allow_http: bool = Field(False, description="plain http to a host other than loopback")


class ModelConfig(_Strict):
    """``[model]``: how the warehouse is built. The build's settings (``BuildSettings.model``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field("UTC", description="IANA time zone of weeks and days")
    baseline_weeks: int = Field(12, ge=1, description="K: the weeks a baseline averages")
    min_baseline_weeks: int = Field(4, ge=1, description="fewer baseline weeks: no verdict")
    forecast_seed: int = Field(
        7, ge=0, description="seed of the Monte Carlo forecasts (deterministic)"
    )
    threads: int = Field(2, ge=1, le=256, description="DuckDB threads for the build")
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="what computes the models: duckdb, or spark for clusters"
    )
    spark_master: Text | None = Field(
        None, description="Spark master URL or sc://host:port (Spark Connect); default local[*]"
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description='Spark settings, e.g. spark.executor.memory = "8g"'
    )
    memory_limit: str = Field(
        "1GB",
        pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$",
        description="DuckDB memory limit (spills past it)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _no_controls(value)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name like Europe/London"
            ) from None
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str) -> str:
        number, unit = re.match(r"^(\d+(?:\.\d+)?)\s*([KMGT])i?B$", value).groups()  # type: ignore[union-attr]
        mib = float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[unit]
        if not 64 <= mib <= 1024**3:
            raise ValueError(f"{value!r}: give DuckDB between 64MB and 1024TB")
        return value

    @field_validator("spark_conf")
    @classmethod
    def _spark_conf(cls, conf: dict[str, str]) -> dict[str, str]:
        for key, value in conf.items():
            _no_controls(key)
            _no_controls(value)
            if not key.startswith("spark.") or key in (
                "spark.master",
                "spark.sql.session.timeZone",
            ):
                raise ValueError(
                    f"{key!r}: spark_conf takes spark.* settings; the master is spark_master and "
                    "the session time zone stays UTC (the models convert to [model] timezone)"
                )
        return conf

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^(local(\[([1-9]\d*|\*)(,\d+)?\])?|yarn|(spark|k8s|mesos|sc)://\S+)$", value
        ):
            raise ValueError(
                f"{value!r} is not a Spark master: local[*], local[N], spark://host:port, "
                "yarn, k8s://..., or sc://host:port for Spark Connect"
            )
        return value

    @field_validator("min_baseline_weeks")
    @classmethod
    def _min_within_baseline(cls, value: int, info: ValidationInfo) -> int:
        baseline = info.data.get("baseline_weeks")
        if baseline is not None and value > baseline:
            raise ValueError(
                f"{value} must not exceed baseline_weeks ({baseline}): "
                "no week could ever have enough baseline weeks to be rated"
            )
        return value


class HealthConfig(_Strict):
    """``[health]``: the verdict thresholds. The build's settings (``BuildSettings.health``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_risk_ratio: float = Field(0.5, gt=0, description="ratio below this (and p below): at risk")
    at_risk_p_value: float = Field(0.05, gt=0, lt=1, description="Poisson p-value for at risk")
    watch_ratio: float = Field(0.8, gt=0, description="ratio below this: watch")

    @model_validator(mode="after")
    def _order(self) -> HealthConfig:
        if self.at_risk_ratio > self.watch_ratio:
            raise ValueError("at_risk_ratio must not exceed watch_ratio")
        return self


class Lead(_Strict):
    name: Text = Field(min_length=1, description="as greeted in the email")
    email: Email = Field(description="where the lead's report goes")
    service_lines: list[ServiceLineId] = Field(min_length=1, description="LIN-* in their report")

    @property
    def key(self) -> str:
        """The lead's directory under ``leads/`` (see :func:`lead_key`)."""
        return lead_key(self.email)


class ServiceLine(_Strict):
    """``[[service_lines]]``: the name leads know a LIN by (shown wherever its id is)."""

    id: ServiceLineId = Field(description="the LIN-*")
    name: Text = Field(min_length=1, max_length=200, description="the name leads know")
    lead: Email | None = Field(None, description="the lead's address: the LIN joins their report")


class SmtpConfig(_Strict):
    host: Text = Field(min_length=1, description="the SMTP server")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = Field("starttls", description="or ssl, none")
    user: Text | None = Field(None, description="login (its password from password_env)")
    sender: Mailbox = Field(alias="from", description="the From: address")
    password_env: Text = Field(
        "VELOCITY_SMTP_PASSWORD",
        description="the environment variable holding the SMTP password",
    )
    password: SecretStr | None = Field(None, exclude=True)  # filled from password_env only
    timeout_s: float = Field(30.0, gt=0, description="per SMTP operation, s")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Config(_Strict):
    data_dir: Path = Field(Path("data"), description="warehouse, reports, staging, the lock")
    lake: str | None = Field(
        None, description="a local path or s3://bucket/prefix; default <data_dir>/lake"
    )
    lake_retention_days: int = Field(
        30, ge=0, description="snapshots younger than this stay readable (time travel)"
    )
    api: ApiConfig = Field(default_factory=ApiConfig, description="the Tasks API")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the model build")
    health: HealthConfig = Field(default_factory=HealthConfig, description="health thresholds")
    service_lines: list[ServiceLine] = Field(
        default_factory=list, description="[[service_lines]]: names of LINs"
    )
    leads: list[Lead] = Field(default_factory=list, description="[[leads]]: who gets which report")
    smtp: SmtpConfig | None = Field(None, description="how email is sent")
    source: str = Field("defaults", exclude=True)

    @field_validator("service_lines")
    @classmethod
    def _one_entry_per_lin(cls, lines: list[ServiceLine]) -> list[ServiceLine]:
        seen: dict[str, int] = {}
        for i, line in enumerate(lines):
            first = seen.setdefault(line.id, i)
            if first != i:
                raise ValueError(f"{line.id} is named twice (service_lines {first} and {i})")
        return lines

    @property
    def service_line_names(self) -> dict[str, str]:
        """LIN id -> its configured name (ids without one are absent: show the id)."""
        return {line.id: line.name for line in self.service_lines}

    def lins_of(self, lead: Lead) -> list[str]:
        """The lead's service lines: their own list plus those naming them as ``lead``."""
        mine = list(lead.service_lines)
        for line in self.service_lines:
            if line.lead and line.lead.lower() == lead.email.lower() and line.id not in mine:
                mine.append(line.id)
        return mine

    def unknown_ids(self, known: set[str]) -> list[str]:
        """Warnings for configured LIN ids that ``known`` (the warehouse's LINs) lacks, and for
        ``service_lines.lead`` addresses that are no configured lead."""
        out = []
        for i, line in enumerate(self.service_lines):
            if line.id not in known:
                out.append(f"service_lines.{i}.id: {line.id} ({line.name}) is not in the warehouse")
        for i, lead in enumerate(self.leads):
            for lin in lead.service_lines:
                if lin not in known:
                    out.append(f"leads.{i}.service_lines: {lin} is not in the warehouse")
        leads = {lead.email.lower() for lead in self.leads}
        for i, line in enumerate(self.service_lines):
            if line.lead and line.lead.lower() not in leads:
                out.append(
                    f"service_lines.{i}.lead: {line.lead} is not a configured lead "
                    "(no [[leads]] entry with that address): nobody gets this LIN's report"
                )
        return out

    @field_validator("leads")
    @classmethod
    def _one_lead_per_email(cls, leads: list[Lead]) -> list[Lead]:
        seen: dict[str, int] = {}
        for i, lead in enumerate(leads):
            first = seen.setdefault(lead.email.lower(), i)
            if first != i:
                raise ValueError(
                    f"{lead.email.lower()} is configured twice (leads {first} and {i}; emails "
                    "are compared ignoring case): merge their service_lines into one lead"
                )
        return leads

    def secret_problems(self) -> list[str]:
        """Problems with secrets the environment must supply (not checked by validation)."""
        if self.smtp is not None and self.smtp.user and self.smtp.password is None:
            return [smtp_password_problem(self.smtp.password_env)]
        return []

    def masked(self) -> dict[str, Any]:
        """The effective configuration, secrets shown as ``********`` (or unset)."""
        data = self.model_dump(mode="json", by_alias=True, exclude={"source"})
        data["api"]["token"] = "********" if self.api.token else "(unset: set SCRUMS_API_TOKEN)"
        if self.smtp is not None:
            data["smtp"]["password"] = (
                "********" if self.smtp.password else f"(unset: set {self.smtp.password_env})"
            )
        return data


def smtp_password_problem(var: str) -> str:
    return f"smtp.user: is set but the password variable {var} is not set in the environment"


def _errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return lines


class ConfigInvalid(ConfigError):
    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        more = (
            f" (+{len(problems) - 1} more; run 'velocity config check')"
            if len(problems) > 1
            else ""
        )
        super().__init__(f"{path} is invalid: {problems[0]}{more}")


def _read(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``; every way of not being one is a ConfigError."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no configuration file at {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
            "save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_config(
    path: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    require_secrets: bool = False,
) -> Config:
    """Read ``path`` (default ``./velocity.toml`` when present) and apply the environment.

    ``require_secrets`` also reports secrets the environment must supply but does not (the SMTP
    password when ``smtp.user`` is set), with the other problems: ``velocity config check``.
    """
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    if path is not None:
        raw = _read(Path(path))
        source = str(path)
    raw.setdefault("api", {})
    if isinstance(raw["api"], dict):  # else validation names the problem
        if env.get("SCRUMS_API_URL"):
            raw["api"]["url"] = env["SCRUMS_API_URL"]
        if env.get("SCRUMS_API_TOKEN"):
            raw["api"]["token"] = env["SCRUMS_API_TOKEN"]
    problems: list[str] = []
    if isinstance(raw.get("smtp"), dict):
        var = raw["smtp"].get("password_env", "VELOCITY_SMTP_PASSWORD")
        if not isinstance(var, str):
            var = "VELOCITY_SMTP_PASSWORD"
        if "password" in raw["smtp"]:
            raise ConfigInvalid(
                source, [f"smtp.password: put the password in the {var} variable, not the file"]
            )
        if env.get(var):
            raw["smtp"]["password"] = env[var]
        elif require_secrets and raw["smtp"].get("user"):
            problems.append(smtp_password_problem(var))
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigInvalid(source, _errors(exc) + problems) from None
    if problems:
        raise ConfigInvalid(source, problems)
    return config


def revalidate(config: Config) -> None:
    """Validate ``config`` again: one changed with ``model_copy`` (or built with
    ``model_construct``) skipped validation. ConfigInvalid with every problem."""
    data = config.model_dump(by_alias=True, exclude={"source"})
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(config.source, _errors(exc)) from None
