"""A fast subset of the validation matrix, run as a user would (`bugdrill validate`): the bugs
whose symptom runs are a few steps long (a memory peak at one step, a two-step two-rank run, a
crash at the fifth SFT step), each injected, trained and classified against a fresh baseline in a
state directory of its own. The other categories' bugs show in runs of 100 to 200 steps, too long
for CI's budget: the whole matrix is `bugdrill validate`, a command of its own (minutes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bug_catalog.catalog import load_catalog

REPO = Path(__file__).resolve().parents[1]
SUBSET = {  # a bug of each category whose runs are short
    "training": [14],  # peak memory at one float32 step (the lr column: tests/test_symptoms.py)
    "training (distributed)": [32],
    "architecture": [20],
}


def test_the_subset_is_of_its_categories_and_every_variant_has_something_to_show():
    catalogue = load_catalog()
    for category, bugs in SUBSET.items():
        for bug in bugs:
            assert catalogue[bug].category == category
            assert all(variant.shows for variant in catalogue[bug].variants), bug


def test_every_variant_of_the_subset_shows_its_recorded_symptom(tmp_path):
    bugs = sorted(b for group in SUBSET.values() for b in group)
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "server.cli", "validate", "--bugs", ",".join(map(str, bugs)),
                             "--json", "--jobs", "2"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(result.stdout)["rows"]
    catalogue = load_catalog()
    assert {(r["bug"], r["variant"]) for r in rows} == {(b, v.name) for b in bugs for v in catalogue[b].variants}
    for row in rows:
        assert row["verdict"] == "shows" and set(row["expected"]) <= set(row["observed"]), row
