"""Golden test of marts.dq_probable_duplicates: pairs of live tasks of one service line with the
same normalised title (lower case, runs of anything but letters and digits as one space,
trimmed), created within 7 days, one bound to an external tool and one not. Every expected pair
is worked out by hand below; titles in plain ASCII words take a shortcut in the model (they are
their own normalisation once lower-cased), the others the regular expression."""

from __future__ import annotations

import duckdb

from scrums_velocity.models.runner import BuildSettings, build
from tests.models.lakes import Lake

A, B = "LIN-26-000001", "LIN-26-000002"


def scenario() -> Lake:
    lake = Lake()
    t = lake.task
    # 1. punctuation and double spaces: "fix login page" both; 25 hours apart -> a pair
    t(
        "TSK-26-000101",
        A,
        "2026-01-05 09:00",
        "backlog",
        title="Fix: Login page!",
        external_id="J-1",
    )
    t("TSK-26-000102", A, "2026-01-06 10:00", "backlog", title="fix login  PAGE")
    # 2. plain ASCII words on both sides (the shortcut): "add retry policy" -> a pair
    t(
        "TSK-26-000201",
        A,
        "2026-01-07 09:00",
        "backlog",
        title="Add Retry Policy",
        external_id="J-2",
    )
    t("TSK-26-000202", A, "2026-01-07 09:30", "backlog", title="add retry policy")
    # 3. accented letters are letters: "café crème 2" -> a pair; Unicode lower-casing of É
    t("TSK-26-000301", A, "2026-01-08 09:00", "backlog", title="CAFÉ-crème 2", external_id="J-3")
    t("TSK-26-000302", A, "2026-01-09 09:00", "backlog", title="café crème 2")
    # 4. a trailing newline and a leading space are trimmed: "deploy api" -> a pair
    t("TSK-26-000401", A, "2026-01-10 09:00", "backlog", title="Deploy API\n", external_id="J-4")
    t("TSK-26-000402", A, "2026-01-10 12:00", "backlog", title=" deploy api")
    # 5. 7 days and 1 hour apart: no pair
    t("TSK-26-000501", A, "2026-01-05 09:00", "backlog", title="Rotate keys", external_id="J-5")
    t("TSK-26-000502", A, "2026-01-12 10:00", "backlog", title="rotate keys")
    # 6. exactly 7 days apart: a pair (hours_apart 168)
    t("TSK-26-000601", A, "2026-01-05 09:00", "backlog", title="Tune GC", external_id="J-6")
    t("TSK-26-000602", A, "2026-01-12 09:00", "backlog", title="tune gc")
    # 7. both bound, or both unbound: no pair
    t("TSK-26-000701", A, "2026-01-05 09:00", "backlog", title="Both bound", external_id="J-7")
    t("TSK-26-000702", A, "2026-01-05 10:00", "backlog", title="both bound", external_id="J-8")
    t("TSK-26-000703", A, "2026-01-05 09:00", "backlog", title="Neither bound")
    t("TSK-26-000704", A, "2026-01-05 10:00", "backlog", title="neither bound")
    # 8. another service line: no pair
    t("TSK-26-000801", A, "2026-01-05 09:00", "backlog", title="Cross line", external_id="J-9")
    t("TSK-26-000802", B, "2026-01-05 10:00", "backlog", title="cross line")
    # 9. a title of punctuation alone normalises to '': never a pair
    t("TSK-26-000901", A, "2026-01-05 09:00", "backlog", title="!!!", external_id="J-10")
    t("TSK-26-000902", A, "2026-01-05 10:00", "backlog", title="?!")
    # 10. digits differ once normalised ("v2" vs "v 2"): no pair
    t("TSK-26-001001", A, "2026-01-05 09:00", "backlog", title="Ship v2", external_id="J-11")
    t("TSK-26-001002", A, "2026-01-05 10:00", "backlog", title="ship v-2")
    # 11. one bound task, two unbound twins: two pairs
    t("TSK-26-001101", B, "2026-01-05 09:00", "backlog", title="Audit log", external_id="J-12")
    t("TSK-26-001102", B, "2026-01-04 09:00", "backlog", title="audit-log")
    t("TSK-26-001103", B, "2026-01-06 21:00", "backlog", title="AUDIT LOG")
    # 12. a deleted (missing) twin counts nowhere
    t("TSK-26-001201", B, "2026-01-05 09:00", "backlog", title="Gone twin", external_id="J-13")
    t(
        "TSK-26-001202",
        B,
        "2026-01-05 10:00",
        "backlog",
        title="gone twin",
        missing_since="2026-01-20 00:00",
    )
    return lake


def test_probable_duplicates_by_hand(tmp_path):
    data_dir = scenario().write(tmp_path)
    build(BuildSettings(data_dir=data_dir))
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    got = con.execute(
        "select service_line_id, normalised_title, bound_task_id, unbound_task_id, hours_apart "
        "from marts.dq_probable_duplicates order by bound_task_id, unbound_task_id"
    ).fetchall()
    assert got == [
        (A, "fix login page", "TSK-26-000101", "TSK-26-000102", 25.0),
        (A, "add retry policy", "TSK-26-000201", "TSK-26-000202", 0.5),
        (A, "café crème 2", "TSK-26-000301", "TSK-26-000302", 24.0),
        (A, "deploy api", "TSK-26-000401", "TSK-26-000402", 3.0),
        (A, "tune gc", "TSK-26-000601", "TSK-26-000602", 168.0),
        (B, "audit log", "TSK-26-001101", "TSK-26-001102", 24.0),
        (B, "audit log", "TSK-26-001101", "TSK-26-001103", 36.0),
    ]
    (count,) = con.execute(
        "select count from marts.data_quality "
        "where check_name = 'probable_duplicates' and service_line_id is null"
    ).fetchone()
    assert count == 7
