"""The README's generated blocks: current, and a stale one is caught (make lint runs the check)."""

from __future__ import annotations

import subprocess
import sys

from scrums_velocity import docgen
from scrums_velocity.errors import exit_codes


def test_the_readme_blocks_are_current():
    text = docgen.README.read_text(encoding="utf-8")
    assert set(docgen.BLOCKS) <= {m.group(2) for m in docgen._BLOCK.finditer(text)}
    assert docgen.stale(text) == []


def test_a_stale_block_is_named_and_fails_the_check(tmp_path, monkeypatch):
    text = docgen.README.read_text(encoding="utf-8")
    edited = text.replace("| `velocity lake history` |", "| `velocity lake histories` |", 1)
    assert edited != text
    assert docgen.stale(edited) == ["cli"]
    readme = tmp_path / "README.md"
    readme.write_text(edited, encoding="utf-8")
    monkeypatch.setattr(docgen, "README", readme)
    assert docgen.main(["--check"]) == 1
    assert docgen.main([]) == 0  # regenerated
    assert readme.read_text(encoding="utf-8") == text


def test_every_exit_code_is_documented_once():
    codes = [code for code, _ in exit_codes()]
    assert codes == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    text = docgen.README.read_text(encoding="utf-8")
    for code, meaning in exit_codes():
        assert f"| {code} | {meaning} |" in text


def test_the_check_runs_as_make_lint_runs_it():
    r = subprocess.run([sys.executable, "-m", "scrums_velocity.docgen", "--check"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
