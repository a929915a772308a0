"""Send each lead their report: plain text + email.html as alternatives, index.html attached.

A failure for one lead (refused recipient, SMTP error, no data for their LINs) is reported and
does not stop the others; the run then fails with a one-line summary of who did not get mail.
``dry_run`` writes ``.eml`` files instead of sending. The SMTP password comes from the environment
(see :mod:`config`) and never appears in a message, a log line or an error.
"""

from __future__ import annotations

import email.errors
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from scrums_velocity.config import Config, ConfigInvalid, Lead, smtp_password_problem
from scrums_velocity.errors import ConfigError, EmailError, ReportError
from scrums_velocity.observe import event


@dataclass
class EmailResult:
    sent: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = []
        if self.sent:
            parts.append(f"sent to {len(self.sent)} lead(s)")
        if self.written:
            parts.append(f"wrote {len(self.written)} .eml file(s) to {self.written[0].parent}")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts) or "no leads configured"


def report_dir(data_dir: Path, week: date | None) -> Path:
    reports = data_dir / "reports"
    if week is not None:
        path = reports / week.isoformat()
    else:
        weeks = sorted(p for p in reports.glob("????-??-??")) if reports.is_dir() else []
        if not weeks:
            raise ReportError(f"no report in {reports}: run 'velocity report' first")
        path = weeks[-1]
    if not (path / "index.html").exists():
        raise ReportError(f"no report for the week of {path.name}: run 'velocity report' first")
    return path


# What building or serialising a message can raise on a value that cannot be a header (a newline,
# an address that does not parse): mapped to a failure of that lead's email, never a traceback.
HEADER_ERRORS = (ValueError, TypeError, LookupError, email.errors.MessageError)


def _subject(summary: str, audience: str) -> str:
    lines = [line.strip() for line in summary.splitlines()] + ["", ""]
    first, second = lines[:2]
    counts = second.split(",")[:2]  # "N at risk, M watch"
    return f"{first}: {', '.join(c.strip() for c in counts)} ({audience})"


def build_message(lead: Lead, directory: Path, sender: str) -> EmailMessage:
    """The lead's message; ReportError without their report, EmailError on a bad header."""
    mine = directory / "leads" / lead.key
    if not (mine / "email.html").exists():
        raise ReportError(f"no report for {lead.email} in {directory}")
    try:
        return _message(lead, mine, directory.name, sender)
    except HEADER_ERRORS as exc:
        raise EmailError(f"cannot build the message to {lead.email}: {_short(exc)}") from None
    except OSError as exc:
        raise ReportError(f"cannot read the report for {lead.email}: {_short(exc)}") from None


def _message(lead: Lead, mine: Path, week: str, sender: str) -> EmailMessage:
    summary = (mine / "summary.txt").read_text(encoding="utf-8")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = lead.email
    msg["Subject"] = _subject(summary, lead.name)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">") or None)
    msg.set_content(summary)
    msg.add_alternative((mine / "email.html").read_text(encoding="utf-8"), subtype="html")
    msg.add_attachment(
        (mine / "index.html").read_bytes(),
        maintype="text",
        subtype="html",
        filename=f"velocity-{week}.html",
    )
    bytes(msg)  # serialise once here: a header that cannot be written fails now, for this lead
    return msg


def _connect(config: Config) -> smtplib.SMTP:
    smtp = config.smtp
    assert smtp is not None
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout_s, context=context
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        if smtp.security == "starttls":
            client.starttls(context=context)
    if smtp.user:
        if smtp.password is None:
            client.close()
            raise ConfigError(smtp_password_problem(smtp.password_env))
        client.login(smtp.user, smtp.password.get_secret_value())
    return client


def send_reports(
    config: Config,
    data_dir: Path,
    week: date | None = None,
    *,
    dry_run: bool = False,
    outbox: Path | None = None,
) -> EmailResult:
    directory = report_dir(data_dir, week)
    result = EmailResult()
    if not config.leads:
        return result
    if not dry_run:
        check_can_send(config)
    sender = config.smtp.sender if config.smtp else "velocity@localhost"
    messages: list[tuple[Lead, EmailMessage]] = []
    for lead in config.leads:
        try:
            messages.append((lead, build_message(lead, directory, sender)))
        except (ReportError, EmailError) as exc:
            result.failed[lead.email] = str(exc)
    if dry_run:
        outbox = outbox or directory / "outbox"
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            for lead, msg in messages:
                path = outbox / f"{lead.key}.eml"
                path.write_bytes(bytes(msg))
                result.written.append(path)
        except OSError as exc:
            reason = exc.strerror or exc
            raise EmailError(f"cannot write .eml files to {outbox}: {reason}") from None
    else:
        _send_all(config, messages, result)
    for email_address, reason in result.failed.items():
        event("email.failed", lead=email_address, reason=reason)
    if result.failed:
        who = "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        raise EmailError(f"{len(result.failed)} of {len(config.leads)} lead emails failed ({who})")
    return result


def check_can_send(config: Config) -> None:
    """Configuration problems that would stop every email: before anything is sent (or run)."""
    if not config.leads:
        return
    if config.smtp is None:
        raise ConfigError(
            "no [smtp] section in the configuration: cannot send "
            "(try --dry-run, or --email-dry-run with nightly)"
        )
    if problems := config.secret_problems():
        raise ConfigInvalid(config.source, problems)


def _send_all(
    config: Config, messages: list[tuple[Lead, EmailMessage]], result: EmailResult
) -> None:
    client: smtplib.SMTP | None = None
    try:
        for lead, msg in messages:
            try:
                if client is None:
                    client = _connect(config)
                refused = client.send_message(msg)
                if refused:
                    code, reason = refused[lead.email]
                    result.failed[lead.email] = f"refused: {code} {reason.decode(errors='replace')}"
                else:
                    result.sent.append(lead.email)
                    event("email.sent", lead=lead.email)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reason = next(iter(exc.recipients.values()))
                result.failed[lead.email] = f"refused: {code} {reason.decode(errors='replace')}"
            except smtplib.SMTPResponseException as exc:
                result.failed[lead.email] = f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}"
                _reset(client)
                client = None
            except (smtplib.SMTPException, OSError) as exc:
                result.failed[lead.email] = (
                    f"cannot send via {config.smtp.host}:{config.smtp.port}: {_short(exc)}"  # type: ignore[union-attr]
                )
                _reset(client)
                client = None
            except HEADER_ERRORS as exc:  # the message cannot be put on the wire
                result.failed[lead.email] = f"cannot send the message: {_short(exc)}"
    finally:
        _reset(client)


def _reset(client: smtplib.SMTP | None) -> None:
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
