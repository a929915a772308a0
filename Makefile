# Works on a fresh machine with only python3 and make: uv is bootstrapped into
# .tools/ when it is not on PATH, then the locked environment is synced into .venv/.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Trust the platform certificate store (registries may sit behind a CA that only it carries).
export UV_SYSTEM_CERTS := 1

.PHONY: test test-fast lint format demo sync bench clean docs spark

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==0.13.8"

# --compile-bytecode: every installed module's bytecode up front, so that no process compiles
# it again (with PYTHONDONTWRITEBYTECODE set, as in some CI images, every process would).
.venv/.synced: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --locked --all-groups --all-extras --compile-bytecode
	touch $@

sync: .venv/.synced

# `velocity build --engine spark` on this machine: a Java runtime (Debian's OpenJDK 17, when no
# `java` is on PATH) and the spark extra (PySpark, pandas, sqlglot; synced with every extra).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
spark:
	@if ! command -v java >/dev/null 2>&1; then \
		echo "installing Debian's openjdk-17-jre-headless for Spark"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless; \
	fi
	$(MAKE) sync

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m scrums_velocity.docgen --check
	.venv/bin/mypy src/scrums_velocity

docs: .venv/.synced
	.venv/bin/python -m scrums_velocity.docgen

format: .venv/.synced
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# The suite runs on every core plus one (pytest-xdist): some tests wait (timeouts, killed runs,
# servers), and the extra worker fills those waits (measured on 2 cores: 238 s with 3 workers,
# 271 s with 2, 287 s with 4). Each test is independent (own tmp dirs, free ports). loadfile: a
# test file's tests share a worker, so each Spark file shares one Spark session.
WORKERS ?= $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')
# The project's own bytecode too (it is installed editable, from src/): otherwise every CLI
# process the tests start would compile it afresh.
test: lint
	.venv/bin/python -m compileall -q src tests
	.venv/bin/pytest -n $(WORKERS) --dist loadfile --durations=15

# The inner loop: every test not marked slow (no kills, S3 runs, Spark, browser or demo), no lint.
test-fast: .venv/.synced
	.venv/bin/python -m compileall -q src tests
	.venv/bin/pytest -n $(WORKERS) --dist loadfile -m "not slow" -q

demo: .venv/.synced
	.venv/bin/velocity demo

bench: .venv/.synced
	.venv/bin/python benchmarks/extract_bench.py

clean:
	rm -rf .venv .tools
