"""velocity.toml: validation, environment overrides, masked secrets, and `velocity config check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scrums_velocity.config import Config, ConfigInvalid, Lead, ServiceLine, load_config

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
    env = {**os.environ, "SCRUMS_API_TOKEN": "tok-secret-789", "VELOCITY_SMTP_PASSWORD": "pw-7"}
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "config", "check", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0
    assert '"token": "********"' in r.stdout
    assert '"password": "********"' in r.stdout
    assert "tok-secret-789" not in r.stdout + r.stderr
    assert "pw-7" not in r.stdout + r.stderr
    # the example sets smtp.user: without the password variable the check fails and says why
    del env["VELOCITY_SMTP_PASSWORD"]
    r = subprocess.run(
        [sys.executable, "-m", "scrums_velocity", "config", "check", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"Error: {EXAMPLE} is invalid:",
        "  smtp.user: is set but the password variable VELOCITY_SMTP_PASSWORD is not set in the "
        "environment",
    ]
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


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCRUMS_", "VELOCITY_"))}
    return subprocess.run(
        [sys.executable, "-m", "scrums_velocity", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=120,
    )


VALID = """
[model]
timezone = "Europe/London"
[[leads]]
name = "Ada Lovelace"
email = "ada@example.com"
service_lines = ["LIN-26-000001"]
[smtp]
host = "smtp.example.com"
user = "reports@example.com"
from = "Delivery velocity <reports@example.com>"
"""


def problems_of(tmp_path, text: str, **kw) -> list[str]:
    path = tmp_path / "velocity.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigInvalid) as err:
        load_config(path, env={}, **kw)
    return err.value.problems


def test_two_leads_with_one_email_in_any_case_are_refused(tmp_path):
    text = (
        VALID
        + """
[[leads]]
name = "Ada again"
email = "Ada@Example.COM"
service_lines = ["LIN-26-000002"]
"""
    )
    assert problems_of(tmp_path, text) == [
        "leads: ada@example.com is configured twice (leads 0 and 1; emails are compared "
        "ignoring case): merge their service_lines into one lead"
    ]


def test_lead_keys_never_collide_and_ignore_case():
    from scrums_velocity.config import Lead, lead_key

    assert lead_key("a.b@x.com") == "a-b-x-com-464a0cfb779bc159"
    assert lead_key("a-b@x.com") == "a-b-x-com-ab88cfdd1e82e75a"
    assert lead_key("A.B@X.com") == lead_key("a.b@x.com")
    lead = Lead(name="A", email="A.B@x.com", service_lines=["LIN-26-000001"])
    assert lead.key == "a-b-x-com-464a0cfb779bc159"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (
            'name = "Ada Lovelace"',
            'name = "Ada\\nBcc: all@example.com"',
            "leads.0.name: 'Ada\\nBcc: all@example.com' contains control characters ('\\n')",
        ),
        (
            'name = "Ada Lovelace"',
            'name = "Ada\\u0085Lovelace"',
            "leads.0.name: 'Ada\\x85Lovelace' contains control characters ('\\x85')",
        ),
        (
            'from = "Delivery velocity <reports@example.com>"',
            'from = "reports@example.com\\rBcc: all@example.com"',
            "smtp.from: 'reports@example.com\\rBcc: all@example.com' contains control "
            "characters ('\\r')",
        ),
        (
            'from = "Delivery velocity <reports@example.com>"',
            'from = "a@example.com, b@example.com"',
            "smtp.from: 'a@example.com, b@example.com' is not one email address "
            "(like 'Velocity <velocity@example.com>')",
        ),
        (
            'email = "ada@example.com"',
            'email = "ada,eve@example.com"',
            "leads.0.email: 'ada,eve@example.com' is not an email address",
        ),
    ],
)
def test_values_that_end_up_in_mail_headers_are_refused(tmp_path, field, value, problem):
    assert field in VALID
    assert problems_of(tmp_path, VALID.replace(field, value)) == [problem]


def test_unknown_time_zone_and_min_baseline_above_baseline(tmp_path):
    text = VALID.replace(
        'timezone = "Europe/London"',
        'timezone = "Mars/Olympus_Mons"\nbaseline_weeks = 3\nmin_baseline_weeks = 4',
    )
    assert problems_of(tmp_path, text) == [
        "model.timezone: unknown time zone 'Mars/Olympus_Mons': use an IANA name like "
        "Europe/London",
        "model.min_baseline_weeks: 4 must not exceed baseline_weeks (3): no week could ever "
        "have enough baseline weeks to be rated",
    ]


def test_smtp_user_without_its_password_variable(tmp_path):
    path = tmp_path / "velocity.toml"
    path.write_text(VALID)
    load_config(path, env={})  # report, build: the password is not needed
    assert problems_of(tmp_path, VALID, require_secrets=True) == [
        "smtp.user: is set but the password variable VELOCITY_SMTP_PASSWORD is not set in the "
        "environment"
    ]
    cfg = load_config(path, env={"VELOCITY_SMTP_PASSWORD": "pw"}, require_secrets=True)
    assert cfg.smtp.password.get_secret_value() == "pw"


def test_not_utf8_and_a_directory(tmp_path):
    from scrums_velocity.errors import ConfigError

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[[leads]]\nname = "Ren\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(latin1, env={})
    assert str(err.value) == (f"{latin1} is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path, env={})
    assert str(err.value) == f"{tmp_path} is a directory, not a configuration file"


@pytest.mark.parametrize("kind", ["latin1", "directory"])
def test_config_check_cli_unreadable_files_give_one_error_line(tmp_path, kind):
    path = tmp_path / "velocity.toml"
    if kind == "latin1":
        path.write_bytes(b'[[leads]]\nname = "Ren\xe9"\n')
        expected = f"Error: {path} is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8"
    else:
        path = tmp_path
        expected = f"Error: {path} is a directory, not a configuration file"
    r = cli("config", "check", "-c", str(path))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [expected]
    assert "Traceback" not in r.stderr


def test_config_check_cli_lists_every_problem(tmp_path):
    bad = tmp_path / "velocity.toml"
    bad.write_text(
        VALID.replace('timezone = "Europe/London"', 'timezone = "Nowhere/Atlantis"')
        .replace('name = "Ada Lovelace"', 'name = "Ada\\nLovelace"')
        .replace(
            "[smtp]",
            "[[leads]]\nname='B'\nemail='ADA@example.com'\nservice_lines=['LIN-26-000003']\n[smtp]",
        )
    )
    r = cli("config", "check", "-c", str(bad))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"Error: {bad} is invalid:",
        "  model.timezone: unknown time zone 'Nowhere/Atlantis': use an IANA name like "
        "Europe/London",
        "  leads.0.name: 'Ada\\nLovelace' contains control characters ('\\n')",
        "  smtp.user: is set but the password variable VELOCITY_SMTP_PASSWORD is not set in the "
        "environment",
    ]
    good = tmp_path / "good.toml"
    good.write_text(VALID)
    r = cli("config", "check", "-c", str(good), env={"VELOCITY_SMTP_PASSWORD": "pw-1"})
    assert r.returncode == 0, r.stderr
    assert '"password": "********"' in r.stdout
    assert "pw-1" not in r.stdout


def test_service_line_names(tmp_path):
    path = tmp_path / "velocity.toml"
    path.write_text(
        '[[service_lines]]\nid = "LIN-26-084990"\nname = "Payments"\nlead = "ada@example.com"\n'
        '[[service_lines]]\nid = "LIN-26-084729"\nname = "Platform & <Core>"\n'
    )
    config = load_config(path, env={})
    assert config.service_line_names == {
        "LIN-26-084990": "Payments",
        "LIN-26-084729": "Platform & <Core>",
    }
    assert config.service_lines[0].lead == "ada@example.com"
    assert config.masked()["service_lines"][1] == {
        "id": "LIN-26-084729",
        "name": "Platform & <Core>",
        "lead": None,
    }
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[service_lines]]\nid = "LIN-26-084990"\nname = "A"\n'
        '[[service_lines]]\nid = "LIN-26-084990"\nname = "B"\n'
        '[[service_lines]]\nid = "LIN-1"\nname = "C"\n'
        '[[service_lines]]\nid = "LIN-26-000001"\nname = "D\\nE"\n'
        '[[service_lines]]\nid = "LIN-26-000002"\nname = ""\n'
    )
    with pytest.raises(ConfigInvalid) as err:
        load_config(bad, env={})
    assert err.value.problems == [
        "service_lines.2.id: 'LIN-1' is not a LIN-YY-NNNNNN id",
        "service_lines.3.name: 'D\\nE' contains control characters ('\\n')",
        "service_lines.4.name: String should have at least 1 character",
    ]


def test_unknown_service_line_ids_are_warnings():
    config = Config(
        service_lines=[
            ServiceLine(id="LIN-26-000001", name="Known"),
            ServiceLine(id="LIN-26-000009", name="Typo", lead="ada@example.com"),
        ],
        leads=[Lead(name="Ada", email="ADA@example.com", service_lines=["LIN-26-000008"])],
    )
    assert config.unknown_ids({"LIN-26-000001"}) == [
        "service_lines.1.id: LIN-26-000009 (Typo) is not in the warehouse",
        "leads.0.service_lines: LIN-26-000008 is not in the warehouse",
    ]
    assert config.lins_of(config.leads[0]) == ["LIN-26-000008", "LIN-26-000009"]
