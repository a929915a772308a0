"""README blocks generated from the code, so the copies cannot drift from what they describe.

``python -m scrums_velocity.docgen`` rewrites every block between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->`` in README.md; ``--check`` exits 1 naming the stale blocks instead
(``make lint`` runs it). Blocks: ``cli`` (every command and its options, from the typer app),
``exit-codes`` (from errors.py), ``marts`` (every mart and its description, from the models'
``_schema.toml``), ``config`` (every key of velocity.toml with its default, from the pydantic
model).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"(<!-- generated:([a-z-]+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.S)


def _commands() -> Iterator[tuple[str, Any]]:
    import typer.main

    from scrums_velocity.cli import app

    root = typer.main.get_command(app)

    def walk(prefix: str, group: Any) -> Iterator[tuple[str, Any]]:
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            if hasattr(cmd, "list_commands"):
                yield from walk(f"{prefix} {name}", cmd)
            else:
                yield f"{prefix} {name}", cmd

    yield from walk("velocity", root)


def cli_block() -> str:
    rows = ["| command | options | what it does |", "| --- | --- | --- |"]
    for path, cmd in _commands():
        options = []
        for param in cmd.params:
            if param.param_type_name == "argument":
                options.append(param.name.upper())
            elif param.name != "help" and param.opts:
                options.append(max(param.opts, key=len))
        summary = (cmd.help or "").strip().splitlines()[0].rstrip(".")
        rows.append(f"| `{path}` | {' '.join(f'`{o}`' for o in options)} | {summary} |")
    return "\n".join(rows) + "\n"


def exit_codes_block() -> str:
    from scrums_velocity.errors import exit_codes

    rows = ["| exit code | meaning |", "| --- | --- |"]
    rows += [f"| {code} | {meaning} |" for code, meaning in exit_codes()]
    return "\n".join(rows) + "\n"


def marts_block() -> str:
    from scrums_velocity.models.runner import load_schema_docs

    rows = ["| mart | what it holds |", "| --- | --- |"]
    for table, entry in sorted(load_schema_docs().items()):
        if table.startswith("marts."):
            rows.append(f"| `{table}` | {' '.join(entry.get('description', '').split())} |")
    return "\n".join(rows) + "\n"


def config_block() -> str:
    from pydantic import BaseModel

    from scrums_velocity.config import Config

    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def shown(value: Any) -> str:
        if value is None:
            return "(unset)"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | Path):
            return f'"{value}"'
        return str(value)

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if field.exclude or name == "source":
                continue
            key = field.alias or name
            annotation = field.annotation
            inner = getattr(annotation, "__args__", (annotation,))
            nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
            if nested:
                listed = str(annotation).startswith("list")
                rows.append(
                    f"| `{prefix}{key}` | {'[]' if listed else ''} | {field.description or ''} |"
                )
                walk(f"{prefix}{key}{'[].' if listed else '.'}", nested[0])
                continue
            default = (
                "" if field.is_required() else shown(field.get_default(call_default_factory=True))
            )
            rows.append(f"| `{prefix}{key}` | {default} | {field.description or ''} |")

    walk("", Config)
    return "\n".join(rows) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "cli": cli_block,
    "exit-codes": exit_codes_block,
    "marts": marts_block,
    "config": config_block,
}


def render(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"README has an unknown generated block {name!r}")
        return match.group(1) + BLOCKS[name]() + match.group(4)

    return _BLOCK.sub(replace, text)


def stale(text: str) -> list[str]:
    """The names of the blocks in ``text`` that differ from what the code says."""
    fresh = {m.group(2): m.group(3) for m in _BLOCK.finditer(render(text))}
    return [m.group(2) for m in _BLOCK.finditer(text) if fresh[m.group(2)] != m.group(3)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = README.read_text(encoding="utf-8")
    if "--check" in args:
        names = stale(text)
        if names:
            print(
                f"README.md: generated blocks out of date: {', '.join(names)} "
                "(run: .venv/bin/python -m scrums_velocity.docgen)",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
