"""The one exception tree of scrums-velocity.

Every expected failure is a ``VelocityError``; lower-level errors (httpx, duckdb, OS) are
mapped into it at the boundary where they happen. The CLI prints ``Error: <message>`` on one
line and exits with the error's ``exit_code``; nothing else should reach the user as a traceback.

    VelocityError
    ├── ConfigError            bad arguments or configuration           (exit 2)
    ├── LockedError            another run holds the data dir's lock   (exit 3)
    ├── ApiError               the Tasks API failed us                  (exit 4)
    │   ├── ApiUnreachableError    connection refused / DNS / timeouts after retries
    │   ├── ApiAuthError           401 / 403
    │   └── ApiRetriesExhaustedError
    ├── ExtractError           the extraction finished with problems    (exit 5)
    ├── BuildError             a model or a data test failed            (exit 6)
    ├── ReportError            the report could not be written          (exit 7)
    ├── EmailError             one or more emails could not be sent     (exit 8)
    └── LakeError              the lake is unreachable or damaged       (exit 9)
"""

from __future__ import annotations


class VelocityError(Exception):
    """Base of every expected failure. ``str(err)`` is one line, safe to print."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, always: the CLI prints it as ``Error: <message>``.
        super().__init__(" ".join(str(message).split()))


class ConfigError(VelocityError):
    exit_code = 2


class LockedError(VelocityError):
    exit_code = 3


class ApiError(VelocityError):
    exit_code = 4


class ApiUnreachableError(ApiError):
    pass


class ApiAuthError(ApiError):
    pass


class ApiRetriesExhaustedError(ApiError):
    pass


class ExtractError(VelocityError):
    exit_code = 5


class BuildError(VelocityError):
    exit_code = 6


class ReportError(VelocityError):
    exit_code = 7


class EmailError(VelocityError):
    exit_code = 8


class LakeError(VelocityError):
    exit_code = 9
