"""The drill catalog follows docs/drills.md and the alert catalog, and its faults are the faults they claim."""

import io
import re

import pytest

from app.jobs import csvfiles
from app.jobs.errors import InvalidUpload
from ops.drills.harness import DRILL_ENV
from ops.drills.procs import ROOT
from ops.drills.scenarios import DRILLS, _good_csv, _poison_csv

DRILLS_DOC = ROOT / "docs" / "drills.md"


def _documented_drills():
    """Return {drill: alerts it must fire} of the Faults table of docs/drills.md."""
    section = DRILLS_DOC.read_text().split("## Faults", 1)[1].split("\n## ", 1)[0]
    rows = re.finditer(r"^\| ([a-z][a-z-]+)[^|]* \| [^|]+ \| ([^|]+) \|", section, re.MULTILINE)
    return {m[1]: set(re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b", m[2])) for m in rows if m[1] != "drill"}


def test_every_drill_expects_and_tolerates_only_catalog_alerts(catalog):
    for drill in DRILLS.values():
        assert set(drill.expected) <= set(catalog), drill.name
        assert set(drill.tolerated) <= set(catalog), drill.name
        assert not set(drill.expected) & set(drill.tolerated), drill.name
        assert all(len(why) > 20 for why in drill.tolerated.values()), drill.name  # each says why


def test_docs_drills_table_lists_every_drill_with_the_alerts_it_expects():
    documented = _documented_drills()
    assert set(documented) == set(DRILLS), "docs/drills.md's Faults table and ops/drills/scenarios.py differ"
    for name, alerts in documented.items():
        assert set(DRILLS[name].expected) == alerts, (name, DRILLS[name].expected, alerts)


def test_poison_upload_passes_the_request_check_and_fails_the_task_past_the_prefix():
    data = _poison_csv()
    assert len(data) > csvfiles.PREFIX_BYTES  # the malformed row lies past what the request parses
    assert csvfiles.validate(io.BytesIO(data), 1_000_000) > 4000  # the request accepts it (202)
    with pytest.raises(InvalidUpload, match=r"row 4002 has 2 fields"):
        csvfiles.summarize(io.BytesIO(data), 1_000_000, 0)  # the task fails it, every time


def test_the_other_drill_uploads_are_valid_csv():
    data = _good_csv()
    assert csvfiles.validate(io.BytesIO(data), 1_000_000) == 20
    csvfiles.summarize(io.BytesIO(data), 1_000_000, 20)


def test_drill_stack_runs_the_drills_environment_with_jobs_stuck_before_recovery():
    assert DRILL_ENV["DJANGO_ENV"] == "drills" and DRILL_ENV["DRILLS_ENABLED"] == "1"
    deadline, recovery = int(DRILL_ENV["JOBS_DEADLINE_QUEUED_SECONDS"]), int(DRILL_ENV["JOBS_REQUEUE_LOST_AFTER_SECONDS"])
    compressed_for = 5 * 60 / float(DRILL_ENV["OPS_RULES_COMPRESS"])  # JobsStuck's for: 5m
    assert deadline + compressed_for < recovery, "lost-message: JobsStuck must fire before the sweeper recovers"
