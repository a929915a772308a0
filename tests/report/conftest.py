"""A warehouse built from server data, with hostile titles placed where the report shows them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from scrums_velocity.api_server import create_app, generate
from scrums_velocity.config import Config, Lead, ServiceLine
from scrums_velocity.models.runner import BuildSettings, build
from tests.conftest import NOW
from tests.extract.conftest import run_extract

SCRIPT_TITLE = "<script>alert(1)</script>"
HOSTILE_NAME = "Payments <b>&</b> 'Core'"  # a service-line name is escaped like task text
IMG_TITLE = '"><img src=x onerror=alert(document.cookie)>'


@dataclass
class Built:
    data_dir: Path
    ds: object
    aging_task: str
    duplicate_pair: tuple[str, str]
    lead_lins: list[str]
    names: dict[str, str]  # the named LINs; every other one falls back to its id

    def config(self, **kw) -> Config:
        return Config(
            data_dir=self.data_dir,
            service_lines=[ServiceLine(id=k, name=v) for k, v in self.names.items()],
            leads=[
                Lead(name="Ada <Lovelace>", email="ada@example.com", service_lines=self.lead_lins),
                Lead(
                    name="Grace Hopper",
                    email="grace@example.com",
                    service_lines=[self.ds.service_lines[0].id],
                ),
            ],
            **kw,
        )


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    ds = generate(tasks=4000, seed=53, now=NOW)
    app = create_app(ds)
    store = app.state.store
    t = ds.tasks
    # the oldest task still in progress gets a <script> title: it is in the aging table
    started = (
        ds.history.filter(pl.col("to_status") == "in_progress")
        .group_by("seq")
        .agg(pl.col("at_ms").min())
        .join(
            t.filter((pl.col("status") == "in_progress") & pl.col("service_line_id").is_not_null()),
            on="seq",
        )
        .sort("at_ms")
    )
    aging_task = started["id"][0]
    store.update(store.by_id[aging_task], {"title": SCRIPT_TITLE}, by="USR-26-000040")
    # a bound and an unbound task of one LIN created within 7 days: a duplicate with an <img> title
    linked = t.filter(pl.col("service_line_id").is_not_null())
    pairs = (
        linked.filter(pl.col("external_id").is_not_null())
        .join(linked.filter(pl.col("external_id").is_null()), on="service_line_id", suffix="_u")
        .with_columns((pl.col("created_ms") - pl.col("created_ms_u")).abs().alias("apart"))
        .filter(pl.col("apart") < 3 * 86_400_000)
        .sort("apart", "id", "id_u")  # the closest pair: first among the report's duplicates
    )
    bound, unbound = pairs["id"][0], pairs["id_u"][0]
    for tid in (bound, unbound):
        store.update(store.by_id[tid], {"title": IMG_TITLE}, by="USR-26-000040")
    data_dir = tmp_path_factory.mktemp("report")
    run_extract(ds, app, data_dir)
    lins = [s.id for s in ds.service_lines]
    names = {lins[0]: HOSTILE_NAME, lins[1]: "Platform"}
    # as of the data's own clock, not the extraction's: the report's week must not move with the date
    build(BuildSettings(data_dir=data_dir, service_lines=tuple(names.items()), as_of=NOW))
    return Built(data_dir, ds, aging_task, (bound, unbound), lead_lins=lins[1:3], names=names)
