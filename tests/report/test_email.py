"""Lead emails through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import shutil
from email.message import EmailMessage

import polars as pl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from scrums_velocity.api_server import free_port
from scrums_velocity.config import Config, Lead, SmtpConfig, lead_key
from scrums_velocity.errors import ConfigError, EmailError
from scrums_velocity.report.email import send_reports
from scrums_velocity.report.render import write_report

PASSWORD = "s3cret-smtp-pa55"


class Inbox:
    """An aiosmtpd handler that keeps messages and refuses some recipients."""

    def __init__(self, refuse: set[str] = frozenset(), reject_data: bool = False) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.refuse = refuse
        self.reject_data = reject_data

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.reject_data:
            return "554 5.7.1 message refused"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp_server():
    servers = []

    def start(handler: Inbox, *, auth: bool = False) -> int:
        port = free_port()
        kwargs = {"authenticator": authenticator, "auth_require_tls": False} if auth else {}
        ctl = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        ctl.start()
        servers.append(ctl)
        return port

    yield start
    for ctl in servers:
        ctl.stop()


def smtp_config(port: int, **kw) -> SmtpConfig:
    return SmtpConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from": "Velocity <velocity@example.com>",
            **kw,
        }
    )


@pytest.fixture(scope="module")
def reported(built):
    cfg = built.config()
    write_report(built.data_dir, cfg)
    return cfg


def test_each_lead_gets_a_multipart_message_with_only_their_lins(built, reported, smtp_server):
    inbox = Inbox()
    cfg = reported.model_copy(update={"smtp": smtp_config(smtp_server(inbox))})
    result = send_reports(cfg, built.data_dir)
    assert sorted(result.sent) == ["ada@example.com", "grace@example.com"]
    assert len(inbox.messages) == 2
    by_rcpt = {rcpts[0]: msg for rcpts, msg in inbox.messages}
    assert all(len(rcpts) == 1 for rcpts, _ in inbox.messages)
    ada = by_rcpt["ada@example.com"]
    assert ada["From"] == "Velocity <velocity@example.com>"
    assert ada["Subject"].startswith("Delivery velocity, week of ")
    assert ada["Subject"].endswith("(Ada <Lovelace>)")
    assert ada.get_content_type() == "multipart/mixed"
    body = ada.get_body(preferencelist=("related", "html", "plain"))
    alternative = next(
        p for p in ada.iter_parts() if p.get_content_type() == "multipart/alternative"
    )
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    plain = alternative.get_body(preferencelist=("plain",)).get_content()
    html_part = alternative.get_body(preferencelist=("html",)).get_content()
    assert body.get_content_type() == "text/html"
    (attachment,) = list(ada.iter_attachments())
    assert attachment.get_filename() == f"velocity-{result_week(built)}.html"
    assert b"Plotly.newPlot" in attachment.get_content().encode()
    others = {s.id for s in built.ds.service_lines} - set(built.lead_lins)
    for lin in built.lead_lins:
        assert lin in plain
        assert lin in html_part
        assert lin in attachment.get_content()
    assert not [lin for lin in others if lin in plain + html_part + attachment.get_content()]
    grace = by_rcpt["grace@example.com"]
    assert built.ds.service_lines[0].id in grace.get_body(preferencelist=("plain",)).get_content()


def test_a_refused_lead_is_reported_and_the_others_still_get_mail(built, reported, smtp_server):
    inbox = Inbox(refuse={"grace@example.com"})
    cfg = reported.model_copy(
        update={
            "smtp": smtp_config(smtp_server(inbox)),
            "leads": [
                reported.leads[1],
                reported.leads[0],  # the refused one first
            ],
        }
    )
    with pytest.raises(EmailError) as err:
        send_reports(cfg, built.data_dir)
    assert str(err.value) == (
        "1 of 2 lead emails failed (grace@example.com: refused: 550 5.1.1 mailbox unavailable)"
    )
    assert [rcpts for rcpts, _ in inbox.messages] == [["ada@example.com"]]


def test_a_server_that_refuses_all_mail(built, reported, smtp_server):
    cfg = reported.model_copy(update={"smtp": smtp_config(smtp_server(Inbox(reject_data=True)))})
    with pytest.raises(
        EmailError, match=r"^2 of 2 lead emails failed .*SMTP 554 5.7.1 message refused"
    ):
        send_reports(cfg, built.data_dir)


def test_unreachable_server_and_missing_smtp(built, reported):
    cfg = reported.model_copy(update={"smtp": smtp_config(free_port())})
    with pytest.raises(EmailError, match=r"cannot send via 127\.0\.0\.1"):
        send_reports(cfg, built.data_dir)
    with pytest.raises(ConfigError, match=r"no \[smtp\] section"):
        send_reports(reported.model_copy(update={"smtp": None}), built.data_dir)


def test_login_uses_the_password_from_the_environment_and_never_shows_it(
    built, reported, smtp_server, caplog
):
    inbox = Inbox()
    port = smtp_server(inbox, auth=True)
    good = smtp_config(port, user="reports", password=PASSWORD)
    send_reports(reported.model_copy(update={"smtp": good}), built.data_dir)
    assert len(inbox.messages) == 2
    bad = smtp_config(port, user="reports", password="wrong-" + PASSWORD)
    with pytest.raises(EmailError) as err:
        send_reports(reported.model_copy(update={"smtp": bad}), built.data_dir)
    assert "SMTP 535" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(good)
    assert PASSWORD not in str(good.model_dump())


def test_dry_run_writes_eml_files(built, reported, tmp_path):
    result = send_reports(reported, built.data_dir, dry_run=True, outbox=tmp_path)
    assert sorted(p.name for p in result.written) == [
        "ada-example-com-b5fc85e55755f9e0.eml",
        "grace-example-com-b533d4547eaa5a0f.eml",
    ]
    msg = email.message_from_bytes(
        (tmp_path / "ada-example-com-b5fc85e55755f9e0.eml").read_bytes(),
        policy=email.policy.default,
    )
    assert msg["To"] == "ada@example.com"
    assert len(list(msg.iter_attachments())) == 1


def test_a_lead_whose_lins_have_no_data_fails_alone(built, reported, tmp_path):
    stranger = Lead(name="Nobody", email="nobody@example.com", service_lines=["LIN-26-999999"])
    cfg = reported.model_copy(update={"leads": [*reported.leads, stranger]})
    write_report(built.data_dir, cfg)
    result = send_reports(
        cfg, built.data_dir, dry_run=True, outbox=tmp_path
    )  # the empty report is still written
    assert len(result.written) == 3
    table = pl.read_parquet(
        built.data_dir
        / "reports"
        / result_week(built)
        / "leads"
        / lead_key("nobody@example.com")
        / "velocity.parquet"
    )
    assert table.height == 0


def result_week(built) -> str:
    return sorted(p.name for p in (built.data_dir / "reports").glob("????-??-??"))[-1]


def test_leads_whose_addresses_slug_alike_each_get_only_their_own_report(built, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(built.data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    lins = [s.id for s in built.ds.service_lines]
    cfg = Config(
        data_dir=data_dir,
        leads=[
            Lead(name="Dot", email="a.b@x.com", service_lines=[lins[0]]),
            Lead(name="Dash", email="a-b@x.com", service_lines=[lins[1], lins[2]]),
        ],
    )
    report = write_report(data_dir, cfg)
    assert "; 2 lead reports;" in report.summary()
    week = report.directory
    assert sorted(p.name for p in (week / "leads").iterdir()) == [
        "a-b-x-com-464a0cfb779bc159",
        "a-b-x-com-ab88cfdd1e82e75a",
    ]
    assert report.leads == {
        "a.b@x.com": week / "leads" / "a-b-x-com-464a0cfb779bc159",
        "a-b@x.com": week / "leads" / "a-b-x-com-ab88cfdd1e82e75a",
    }
    assert pl.read_parquet(report.leads["a.b@x.com"] / "velocity.parquet")[
        "service_line_id"
    ].to_list() == [lins[0]]
    assert sorted(
        pl.read_parquet(report.leads["a-b@x.com"] / "velocity.parquet")["service_line_id"]
    ) == sorted([lins[1], lins[2]])
    outbox = tmp_path / "outbox"
    result = send_reports(cfg, data_dir, dry_run=True, outbox=outbox)
    assert len(result.written) == 2
    for path in result.written:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        plain = msg.get_body(preferencelist=("plain",)).get_content()
        mine = {"a.b@x.com": [lins[0]], "a-b@x.com": [lins[1], lins[2]]}[msg["To"]]
        assert path.name == f"{lead_key(msg['To'])}.eml"
        assert all(lin in plain for lin in mine)
        assert not [lin for lin in lins if lin not in mine and lin in plain]


def test_two_leads_of_one_address_are_refused_even_past_validation(built, reported, tmp_path):
    twin = Lead(name="Ada twin", email="ADA@example.com", service_lines=built.lead_lins)
    cfg = reported.model_copy(update={"leads": [*reported.leads, twin]})  # skips validation
    with pytest.raises(ConfigError) as err:
        write_report(built.data_dir, cfg)
    assert str(err.value) == (
        "ada@example.com is configured twice (emails are compared ignoring case): "
        "merge their service_lines into one lead"
    )


def test_a_header_that_cannot_be_built_fails_that_lead_alone(built, reported, smtp_server):
    # validation refuses control characters; a Lead built without validation must still not crash
    bad = Lead.model_construct(
        name="Eve\nBcc: everyone@example.com",
        email="eve@example.com",
        service_lines=built.lead_lins,
    )
    cfg = reported.model_copy(update={"leads": [bad, *reported.leads]})
    write_report(built.data_dir, cfg)
    inbox = Inbox()
    cfg = cfg.model_copy(update={"smtp": smtp_config(smtp_server(inbox))})
    with pytest.raises(EmailError) as err:
        send_reports(cfg, built.data_dir)
    assert str(err.value) == (
        "1 of 3 lead emails failed (eve@example.com: cannot build the message to "
        "eve@example.com: Header values may not contain linefeed or carriage return characters)"
    )
    assert sorted(r[0] for r, _ in inbox.messages) == ["ada@example.com", "grace@example.com"]
    assert not [m for _, m in inbox.messages if "everyone" in str(m)]
