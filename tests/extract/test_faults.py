"""Through faults the lake comes out exactly as from a fault-free run; past the retry cap the run
fails clearly and the previous lake stays in place."""

from __future__ import annotations

import pytest

from scrums_velocity.api_server import Knobs, create_app, generate
from scrums_velocity.errors import ApiRetriesExhaustedError
from scrums_velocity.lake import open_lake
from tests.conftest import NOW, live_server
from tests.extract.conftest import assert_same_lake, read_lake, run_extract, settings_for


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=1500, seed=29, now=NOW)


@pytest.fixture(scope="module")
def reference(ds, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference")
    run_extract(ds, create_app(ds), path)
    return path


@pytest.mark.slow
def test_faults_in_process_give_the_same_lake(ds, reference, tmp_path):
    # 5% faults of every kind (hangs included: the per-request deadline cuts them short), plus
    # a token bucket tighter than the client's pace so 429s happen too.
    knobs = Knobs(fault_rate=0.05, hang_seconds=10.0, rate_limit=400, burst=20, seed=4)
    app = create_app(ds, knobs)
    # the deadline cuts every hang (10 s) short, with room for a slow machine's normal answers
    settings = settings_for(ds, concurrency=16, deadline=2.0, max_attempts=10)
    result = run_extract(ds, app, tmp_path, settings=settings)
    assert result.outcome == "succeeded"
    injected = app.state.stats.as_dict()
    assert sum(injected["faults"].values()) > 30
    assert set(injected["faults"]) == {
        "500",
        "502",
        "503",
        "hang",
        "drop",
        "truncated",
        "invalid_json",
    }
    assert injected["rate_limited"] > 0
    assert set(result.retries) >= {"5xx", "timeout", "connection", "invalid_json", "429"}
    assert (
        sum(result.retries.values()) == sum(injected["faults"].values()) + injected["rate_limited"]
    )
    assert_same_lake(reference, tmp_path)
    (run,) = read_lake(tmp_path, "runs").iter_rows(named=True)
    assert dict(run["retries"]) == result.retries


def test_faults_over_a_real_socket_give_the_same_lake(ds, reference, tmp_path):
    knobs = Knobs(fault_rate=0.05, hang_seconds=3.0, seed=8)
    with live_server(ds, knobs) as server:
        settings = settings_for(
            ds, api_url=server.base_url, read_timeout=0.4, deadline=0.6, max_attempts=10
        )
        result = run_extract(ds, None, tmp_path, settings=settings)
        injected = server.app.state.stats.as_dict()["faults"]
    assert result.outcome == "succeeded"
    assert injected.get("drop", 0) > 0
    assert injected.get("hang", 0) > 0
    assert result.retries.get("connection", 0) >= injected["drop"]
    assert_same_lake(reference, tmp_path)


def test_past_the_retry_cap_the_run_fails_and_the_previous_lake_stays(ds, reference, tmp_path):
    run_extract(ds, create_app(ds), tmp_path)
    before = open_lake(tmp_path).head()
    broken = create_app(ds, Knobs(fault_rate=1.0, fault_kinds=("503",)))
    with pytest.raises(ApiRetriesExhaustedError) as err:
        run_extract(ds, broken, tmp_path, settings=settings_for(ds, max_attempts=3))
    message = str(err.value)
    assert message.startswith(
        "GET http://127.0.0.1:1/v1/tasks failed after 3 attempts; last: server error 503"
    )
    assert "\n" not in message
    # the previous data is intact; the failed run is recorded in the manifest
    assert open_lake(tmp_path).head().run_id != before.run_id  # a new snapshot: the run's row
    assert_same_lake(reference, tmp_path)
    runs = read_lake(tmp_path, "runs").sort("started_at")
    assert runs["outcome"].to_list() == ["succeeded", "failed"]
    assert runs["error"][1] == message
    assert dict(runs["retries"][1])["5xx"] >= 2


def test_429s_have_their_own_cap_and_do_not_use_up_the_failure_budget(tmp_path):
    """A bucket tighter than the client's pace (no client limit): many 429s, and none of them
    counts against max_attempts=2."""
    small = generate(tasks=300, seed=31, now=NOW)
    app = create_app(small, Knobs(rate_limit=300, burst=10))
    settings = settings_for(small, concurrency=16, max_attempts=2)
    result = run_extract(small, app, tmp_path, settings=settings)
    assert result.retries.get("429", 0) > 20
    assert result.details_fetched == small.tasks.height


def test_the_429_cap_fails_the_run_with_a_clear_message(ds, tmp_path):
    async def always_429(scope, receive, send):
        body = b'{"error": {"code": "rate_limited", "message": "slow down"}}'
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [(b"retry-after", b"0"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    always_429.state = None
    settings = settings_for(ds, max_attempts=2, max_rate_limited=3)
    with pytest.raises(
        ApiRetriesExhaustedError, match=r"failed after 3 attempts; last: rate limited \(429\)$"
    ):
        run_extract(ds, always_429, tmp_path, settings=settings)
