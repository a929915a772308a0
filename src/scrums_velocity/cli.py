"""The ``velocity`` command line: parses arguments and delegates to the library."""

from __future__ import annotations

import typer

from scrums_velocity import __version__

app = typer.Typer(
    name="velocity",
    help="Delivery-velocity analytics for the Scrums.com Tasks API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
