"""velocity.toml: validation, environment overrides, masked secrets, and `velocity config check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scrums_velocity.config import ConfigInvalid, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "velocity.example.toml"


def test_the_example_is_valid_and_secrets_come_from_the_environment():
    cfg = load_config(
        EXAMPLE, env={"SCRUMS_API_TOKEN": "tok-123", "VELOCITY_SMTP_PASSWORD": "pw-456"}
    )
    assert cfg.api.workspaces == ["WS-26-000021", "WS-26-000022"]
    assert cfg.model.timezone == "Europe/London"
    assert [lead.email for lead in cfg.leads] == ["ada@example.com", "grace@example.com"]
    assert cfg.api.token.get_secret_value() == "tok-123"
    assert cfg.smtp.password.get_secret_value() == "pw-456"
    shown = repr(cfg) + str(cfg.masked())
    assert "tok-123" not in shown
    assert "pw-456" not in shown
    assert cfg.masked()["api"]["token"] == "********"


def test_env_overrides_the_url(tmp_path):
    cfg = load_config(EXAMPLE, env={"SCRUMS_API_URL": "http://127.0.0.1:9"})
    assert cfg.api.url == "http://127.0.0.1:9"
    assert cfg.masked()["api"]["token"] == "(unset: set SCRUMS_API_TOKEN)"


def test_every_invalid_field_is_explained(tmp_path):
    bad = tmp_path / "velocity.toml"
    bad.write_text("""
[api]
workspaces = ["WS-1"]
concurrency = 0
[health]
at_risk_ratio = 0.9
watch_ratio = 0.8
[[leads]]
name = "X"
email = "not-an-email"
service_lines = ["LIN-26-000001"]
[smtp]
host = "h"
from = "a@b.c"
password = "in the file"
colour = "red"
""")
    with pytest.raises(ConfigInvalid) as err:
        load_config(bad, env={})
    assert err.value.problems == [
        "smtp.password: put the password in the VELOCITY_SMTP_PASSWORD variable, not the file"
    ]
    bad.write_text(bad.read_text().replace('password = "in the file"\n', ""))
    with pytest.raises(ConfigInvalid) as err:
        load_config(bad, env={})
    assert err.value.problems == [
        "api.workspaces.0: 'WS-1' is not a WS-YY-NNNNNN id",
        "api.concurrency: Input should be greater than or equal to 1",
        "health: at_risk_ratio must not exceed watch_ratio",
        "leads.0.email: 'not-an-email' is not an email address",
        "smtp.colour: Extra inputs are not permitted",
    ]
    assert str(err.value).startswith(f"{bad} is invalid: api.workspaces.0: 'WS-1' is not a WS-YY")
    assert str(err.value).endswith("(+4 more; run 'velocity config check')")


def test_not_toml_and_missing_file(tmp_path):
    (tmp_path / "x.toml").write_text("[api\n")
    with pytest.raises(Exception, match="is not valid TOML"):
        load_config(tmp_path / "x.toml", env={})
    with pytest.raises(Exception, match="no configuration file at"):
        load_config(tmp_path / "missing.toml", env={})


def test_config_check_cli(tmp_path):
    env = {**os.environ, "SCRUMS_API_TOKEN": "tok-secret-789"}
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "config", "check", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0
    assert '"token": "********"' in r.stdout
    assert '"password": "(unset: set VELOCITY_SMTP_PASSWORD)"' in r.stdout
    assert "tok-secret-789" not in r.stdout + r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[api]\nconcurrency = 0\n[model]\nbaseline_weeks = "twelve"\n')
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "config", "check", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"Error: {bad} is invalid:",
        "  api.concurrency: Input should be greater than or equal to 1",
        "  model.baseline_weeks: Input should be a valid integer, unable to parse string as an integer",
    ]
