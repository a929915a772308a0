"""The reporter: velocity tables and charts as HTML, CSV and Parquet, and the leads' emails.

What other stages may use: :func:`write_report` and :func:`send_reports` (with
:func:`check_can_send`, the email settings' preflight). Chart code builds on
:mod:`scrums_velocity.report.plotting`.
"""

from scrums_velocity.report.email import check_can_send, send_reports
from scrums_velocity.report.render import write_report

__all__ = ["check_can_send", "send_reports", "write_report"]
