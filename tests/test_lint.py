"""`make lint` type-checks src/ with mypy: a type error fails it (the check can fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MYPY = Path(sys.executable).parent / "mypy"


def test_mypy_with_the_projects_settings_rejects_a_type_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def half(n: int) -> int:\n    return n / 2\n")
    r = subprocess.run(
        [str(MYPY), "--config-file", str(ROOT / "pyproject.toml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert 'Incompatible return value type (got "float", expected "int")' in r.stdout


def test_make_lint_runs_mypy_and_the_readme_check():
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert ".venv/bin/mypy src/scrums_velocity" in lint
    assert "scrums_velocity.docgen --check" in lint
