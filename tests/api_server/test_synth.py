"""The synthetic data is deterministic and shaped like real delivery data."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from scrums_velocity.api_server.synth import DAY_MS, HOSTILE_TITLES, STATUSES, generate
from tests.conftest import NOW


@pytest.fixture(scope="module")
def ds():
    return generate(tasks=20_000, seed=7, now=NOW)


def test_same_seed_same_data_other_seed_other_data(ds):
    again = generate(tasks=20_000, seed=7, now=NOW)
    assert again.tasks.equals(ds.tasks)
    assert again.history.equals(ds.history)
    assert again.tokens == ds.tokens
    other = generate(tasks=20_000, seed=8, now=NOW)
    assert not other.tasks.equals(ds.tasks)


def test_ids_and_counts(ds):
    assert ds.tasks.height == 20_000
    assert ds.tasks["id"].n_unique() == 20_000
    assert ds.tasks["id"].str.contains(r"^TSK-26-\d{6}$").all()
    assert 5 <= len(ds.service_lines) <= 50
    assert len(ds.service_lines) == 40  # 20,000 tasks // 500
    # ids follow creation order (the API's immutable ordering key)
    assert ds.tasks["created_ms"].is_sorted()
    assert ds.tasks["seq"].to_list() == list(range(20_000))


def test_everything_happens_before_now(ds):
    now_ms = int(NOW.timestamp() * 1000)
    assert ds.tasks["created_ms"].max() <= now_ms
    assert ds.tasks["updated_ms"].max() <= now_ms
    assert ds.history["at_ms"].max() <= now_ms
    start = int((NOW - timedelta(weeks=26)).timestamp() * 1000)
    assert ds.tasks["created_ms"].min() >= start


def test_histories_are_consistent_chains(ds):
    h = ds.history.sort(["seq", "at_ms"])
    chained = h.with_columns(pl.col("to_status").shift(1).over("seq").alias("prev_to"))
    broken = chained.filter(
        pl.col("prev_to").is_not_null() & (pl.col("prev_to") != pl.col("from_status"))
    )
    assert broken.height == 0
    last = h.group_by("seq").agg(pl.col("to_status").last())
    joined = ds.tasks.join(last, on="seq")
    assert (joined["status"] == joined["to_status"]).all()
    assert set(ds.history["from_status"]) | set(ds.history["to_status"]) <= set(STATUSES)
    # every task's history happens at or after its creation and no later than its updated_at
    span = h.join(ds.tasks.select("seq", "created_ms", "updated_ms"), on="seq")
    assert (span["at_ms"] >= span["created_ms"]).all()
    assert (span["at_ms"] <= span["updated_ms"]).all()


def test_no_task_has_two_changes_at_the_same_instant(ds):
    dup = ds.history.group_by("seq", "at_ms").len().filter(pl.col("len") > 1)
    assert dup.height == 0


def test_review_rework_scales_the_history():
    light = generate(tasks=5000, seed=3, now=NOW, rework=0.0)
    heavy = generate(tasks=5000, seed=3, now=NOW, rework=1.5)
    bounce = (pl.col("from_status") == "in_review") & (pl.col("to_status") == "in_progress")
    assert light.history.filter(bounce).height == 0
    assert heavy.history.filter(bounce).height > 0.5 * 5000
    assert 4.3 < heavy.history.height / 5000 < 5.5  # "about 5 history entries each"


def test_realistic_mix(ds):
    t, h = ds.tasks, ds.history
    share = t["status"].value_counts().to_dict(as_series=False)
    counts = dict(zip(share["status"], share["count"], strict=True))
    assert set(counts) == set(STATUSES)
    assert 0.6 < counts["done"] / t.height < 0.9
    assert 0.04 < counts["cancelled"] / t.height < 0.12
    # reopened tasks: a transition out of done
    assert h.filter(pl.col("from_status") == "done").height > 0.03 * t.height
    # steps skipped: in_progress -> done directly
    assert (
        h.filter((pl.col("from_status") == "in_progress") & (pl.col("to_status") == "done")).height
        > 0
    )
    # done without any history (imported already closed)
    no_hist = t.join(h.select("seq").unique(), on="seq", how="anti").filter(
        pl.col("status") == "done"
    )
    assert no_hist.height > 0.02 * t.height
    # about 5% unlinked, only in the workspace that allows it
    unlinked = t.filter(pl.col("service_line_id").is_null())
    assert 0.04 < unlinked.height / t.height < 0.06
    relaxed = {w.id for w in ds.workspaces if not w.require_task_service_line}
    assert set(unlinked["workspace_id"]) <= relaxed
    # agents make a share of changes, more of the closures
    agent = h.with_columns(pl.col("by").str.starts_with("AGT-").alias("agent"))
    closing = agent.filter(pl.col("to_status") == "done")["agent"].mean()
    overall = agent["agent"].mean()
    assert 0.05 < overall < closing < 0.4
    # mixed external sources, including none
    assert set(t["external_source"].unique().to_list()) == {"jira", "clickup", "linear", None}


def test_probable_duplicates_exist(ds):
    t = ds.tasks.filter(pl.col("service_line_id").is_not_null())
    pairs = (
        t.join(t, on=["service_line_id", "title"], suffix="_b")
        .filter(pl.col("seq") < pl.col("seq_b"))
        .filter((pl.col("created_ms_b") - pl.col("created_ms")).abs() <= 7 * DAY_MS)
        .filter(pl.col("external_id").is_not_null() & pl.col("external_id_b").is_null())
    )
    assert pairs.height >= 20_000 * 0.004 * 0.9


def test_hostile_and_long_titles(ds):
    titles = set(ds.tasks["title"].to_list())
    for hostile in HOSTILE_TITLES:
        assert hostile in titles
    assert ds.tasks["title"].str.len_chars().max() == 2000


def test_lins_differ_slow_down_and_one_is_young(ds):
    now_ms = int(NOW.timestamp() * 1000)
    done = ds.history.filter(pl.col("to_status") == "done").join(
        ds.tasks.select("seq", "service_line_id"), on="seq"
    )
    weekly = done.with_columns(((now_ms - pl.col("at_ms")) // (7 * DAY_MS)).alias("weeks_ago"))
    young = next(s for s in ds.service_lines if s.profile == "young")
    assert now_ms - young.first_activity_ms < 4 * 7 * DAY_MS
    assert (
        ds.tasks.filter(pl.col("service_line_id") == young.id)["created_ms"].min()
        >= young.first_activity_ms
    )
    for line in ds.service_lines:
        mine = weekly.filter(pl.col("service_line_id") == line.id)
        recent = mine.filter(pl.col("weeks_ago") < 3).height / 3
        before = mine.filter((pl.col("weeks_ago") >= 3) & (pl.col("weeks_ago") < 15)).height / 12
        if line.profile == "slowdown":
            assert recent < 0.5 * before, line
        elif line.profile == "steady":
            assert recent > 0.6 * before, line
    rates = [s.weekly_rate for s in ds.service_lines]
    assert max(rates) > 3 * min(rates)


def test_small_and_odd_sizes_work():
    tiny = generate(tasks=1, seed=1, now=NOW)
    assert tiny.tasks.height == 1
    assert len(tiny.service_lines) == 5
    with pytest.raises(ValueError, match="tasks"):
        generate(tasks=0, now=NOW)


def test_write_parquet_roundtrip(ds, tmp_path):
    paths = ds.write_parquet(tmp_path)
    assert pl.read_parquet(paths["tasks"]).equals(ds.tasks)
    assert pl.read_parquet(paths["history"]).height == ds.history.height
