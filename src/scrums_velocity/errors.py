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
    """invalid arguments or configuration (`velocity config check` explains every field)"""

    exit_code = 2


class LockedError(VelocityError):
    """another run holds the data dir or the lake (the message names its pid, host and command)"""

    exit_code = 3


class ApiError(VelocityError):
    """the API failed: unreachable, 401/403 (naming the workspace), retries exhausted"""

    exit_code = 4


class ApiUnreachableError(ApiError):
    pass


class ApiAuthError(ApiError):
    pass


class ApiRetriesExhaustedError(ApiError):
    pass


class ExtractError(VelocityError):
    """extraction finished with rejected records and `--strict` was given"""

    exit_code = 5


class BuildError(VelocityError):
    """the warehouse build failed (a model or a data test, named with the offending rows)"""

    exit_code = 6


class ReportError(VelocityError):
    """the report could not be written"""

    exit_code = 7


class EmailError(VelocityError):
    """one or more lead emails failed (the others were sent; each failure is named)"""

    exit_code = 8


class LakeError(VelocityError):
    """the lake is unreachable or damaged (the line names the table, file or endpoint)"""

    exit_code = 9


def exit_codes() -> list[tuple[int, str]]:
    """Every documented exit code with its meaning (0 and each error class's), for the README."""
    codes = {0: "success (for `nightly`: every stage succeeded)"}
    pending = [VelocityError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.exit_code not in codes and cls.__doc__ and cls is not VelocityError:
            codes[cls.exit_code] = " ".join(cls.__doc__.split())
    return sorted(codes.items())


def first_line(exc: BaseException) -> str:
    """A library error's first line (DuckDB's run to several, with hints and context), or its
    type when it says nothing: what an ``Error:`` line quotes of it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
