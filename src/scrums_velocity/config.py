"""``velocity.toml``: the pipeline's configuration, validated with pydantic.

Secrets come from the environment: the API token from ``SCRUMS_API_TOKEN`` (``api.token`` in the
file is accepted but discouraged), the SMTP password from the variable ``smtp.password_env`` names
(default ``VELOCITY_SMTP_PASSWORD``). Both are ``SecretStr``: masked in reprs, in
``velocity config check`` and in every error.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from scrums_velocity.errors import ConfigError

DEFAULT_PATH = Path("velocity.toml")
_EMAIL = r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$"
_LIN = r"^LIN-\d{2}-\d{6}$"
_WS = r"^WS-\d{2}-\d{6}$"


def _id_of(prefix: str, pattern: str):
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"{value!r} is not a {prefix}-YY-NNNNNN id")
        return value

    return AfterValidator(check)


def _email(value: str) -> str:
    if not re.match(_EMAIL, value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Email = Annotated[str, AfterValidator(_email)]
WorkspaceId = Annotated[str, _id_of("WS", _WS)]
ServiceLineId = Annotated[str, _id_of("LIN", _LIN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiConfig(_Strict):
    url: str | None = Field(None, description="Base URL of the Tasks API (env SCRUMS_API_URL)")
    token: SecretStr | None = Field(None, description="Prefer the SCRUMS_API_TOKEN variable")
    workspaces: list[WorkspaceId] = Field(default_factory=list)
    service_lines: list[ServiceLineId] = Field(
        default_factory=list, description="narrow the listing"
    )
    projects: list[str] = Field(default_factory=list, description="narrow the listing")
    concurrency: int = Field(16, ge=1, le=256)
    max_rps: float | None = Field(None, gt=0)
    timeout_s: float = Field(15.0, gt=0)
    deadline_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    allow_http: bool = False


class ModelConfig(_Strict):
    timezone: str = "UTC"
    baseline_weeks: int = Field(12, ge=1)
    min_baseline_weeks: int = Field(4, ge=1)


class HealthConfig(_Strict):
    at_risk_ratio: float = Field(0.5, gt=0)
    at_risk_p_value: float = Field(0.05, gt=0, lt=1)
    watch_ratio: float = Field(0.8, gt=0)

    @model_validator(mode="after")
    def _order(self) -> HealthConfig:
        if self.at_risk_ratio > self.watch_ratio:
            raise ValueError("at_risk_ratio must not exceed watch_ratio")
        return self


class Lead(_Strict):
    name: str = Field(min_length=1)
    email: Email
    service_lines: list[ServiceLineId] = Field(min_length=1)


class SmtpConfig(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    sender: str = Field(alias="from", pattern=r"^.*[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?$")
    password_env: str = "VELOCITY_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret
    password: SecretStr | None = Field(None, exclude=True)  # filled from password_env only
    timeout_s: float = Field(30.0, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Config(_Strict):
    data_dir: Path = Path("data")
    api: ApiConfig = Field(default_factory=ApiConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    leads: list[Lead] = Field(default_factory=list)
    smtp: SmtpConfig | None = None
    source: str = Field("defaults", exclude=True)

    def masked(self) -> dict[str, Any]:
        """The effective configuration, secrets shown as ``********`` (or unset)."""
        data = self.model_dump(mode="json", by_alias=True, exclude={"source"})
        data["api"]["token"] = "********" if self.api.token else "(unset: set SCRUMS_API_TOKEN)"
        if self.smtp is not None:
            data["smtp"]["password"] = (
                "********" if self.smtp.password else f"(unset: set {self.smtp.password_env})"
            )
        return data


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


def load_config(path: Path | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read ``path`` (default ``./velocity.toml`` when present) and apply the environment."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"no configuration file at {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        source = str(path)
    raw.setdefault("api", {})
    if env.get("SCRUMS_API_URL"):
        raw["api"]["url"] = env["SCRUMS_API_URL"]
    if env.get("SCRUMS_API_TOKEN"):
        raw["api"]["token"] = env["SCRUMS_API_TOKEN"]
    if isinstance(raw.get("smtp"), dict):
        var = raw["smtp"].get("password_env", "VELOCITY_SMTP_PASSWORD")
        if "password" in raw["smtp"]:
            raise ConfigInvalid(
                source, [f"smtp.password: put the password in the {var} variable, not the file"]
            )
        if env.get(var):
            raw["smtp"]["password"] = env[var]
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigInvalid(source, _errors(exc)) from None
    return config
