"""Catalogue applicability measured on the checkout, not assumed (issue 17, sandbox/applicability.py).

The static table only finds an edit's construct in the text. These tests edit copies of a
checkout so that the construct is still found while the variant is no bug there: a check that no
longer fits the checkout's API, an edit that changes only layout, an edit on a path the default
run never takes. The rules run on the built-in codebase always (fast); the nanochat findings
need a checkout (NANOCHAT_DIR, see tests/test_nanochat.py).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from sandbox import applicability, codebases
from sandbox.applicability import CHECK_MOVED, CODE_REVIEW_ONLY, LAYOUT_ONLY, layout_only, measure
from sandbox.codebases import CodebaseError, applicable_pick

NANOCHAT_DIR = os.environ.get("NANOCHAT_DIR")
needs_checkout = pytest.mark.skipif(not NANOCHAT_DIR, reason="set NANOCHAT_DIR to a nanochat checkout to run this")


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "state"


def variant_of(record, name):
    return next(v for v in record.variants if v.name == name)


def copy_of(checkout, destination, substitutions=()):
    """A copy of a checkout (its .git left behind), with (file, pattern, replacement) applied."""
    shutil.copytree(checkout, destination, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    for file, pattern, replacement in substitutions:
        paths = sorted(destination.rglob("*.py")) if file == "*" else [destination / file]
        for path in paths:
            text = path.read_text()
            edited = re.sub(pattern, replacement, text)
            assert file == "*" or edited != text, f"{pattern!r} is not in {file}"
            path.write_text(edited)
    return destination


# ----------------------------------------------------------------------------- the rules (CI)


def test_an_edit_that_changes_only_layout_or_comments_is_no_bug():
    pristine = "def attend(q, k):\n    q, k = norm(q), norm(k) # QK norm\n    return q @ k\n"
    assert layout_only(pristine, pristine.replace(" # QK norm", ""))
    assert layout_only(pristine, pristine.replace("norm(q), norm(k)", "norm(q),   norm(\n        k)"))
    assert not layout_only(pristine, pristine.replace("norm(q), norm(k)", "norm(q), k"))
    assert not layout_only(pristine, pristine.replace("return", "return(")), "a text that does not parse is a change"


def test_a_check_that_fails_on_the_pristine_copy_makes_its_variant_not_apply(state, tmp_path, monkeypatch):
    """The check-fits rule on copies of the built-in codebase: an unedited copy, where the
    temperature-zero check passes on pristine and fails on the bugged copy, and a copy whose
    sample_next_token renamed the top_k argument the check passes, so the check fails on pristine."""
    builtin = codebases.builtin()
    record = load_catalog()[49]  # temperature-zero: its check calls sample_next_token(..., top_k=2)
    variant = variant_of(record, "no-greedy-branch")
    fits = copy_of(builtin.source, tmp_path / "fits" / "picochat")
    moved = copy_of(builtin.source, tmp_path / "moved" / "picochat",
                    [("picochat/engine.py", r"\btop_k\b", "topk")])

    started = time.time()
    row = measure(builtin, fits, record, variant, run=False)
    print(f"check on pristine and bugged copies: {time.time() - started:.1f} s")
    assert (row["applies"], row["ran"], row["cached"], row["reason"]) == (True, False, False, "")
    row = measure(builtin, moved, record, variant, run=False)
    assert not row["applies"] and row["reason"].startswith(CHECK_MOVED + ": "), row["reason"]
    assert "top_k" in row["reason"], row["reason"]  # the check's own complaint, from the pristine copy

    def no_check_runs(*args, **kwargs):
        raise AssertionError("a cached verdict ran a check")

    monkeypatch.setattr("bug_catalog.checking.run_checks", no_check_runs)
    assert measure(builtin, fits, record, variant, run=False)["cached"]
    assert measure(builtin, moved, record, variant, run=False)["reason"] == row["reason"]

    # a non-built-in codebase's draw refuses the variant with the measured reason (here from the cache)
    class Checkout(type(builtin)):
        source = None

    with pytest.raises(CodebaseError, match=re.escape(CHECK_MOVED)):
        applicable_pick(Checkout(), moved, record, variant, False, 0)
    assert applicable_pick(Checkout(), fits, record, variant, False, 0) == (record, variant)


def test_the_builtin_codebase_is_not_measured_when_drawn(monkeypatch):
    """picochat's draws are as before: its validation matrix is its measurement."""
    def no_measure(*args, **kwargs):
        raise AssertionError("the built-in codebase was measured")

    monkeypatch.setattr(applicability, "measure", no_measure)
    builtin = codebases.builtin()
    for record in sorted(load_catalog().values(), key=lambda r: r.id)[:5]:
        assert applicable_pick(builtin, builtin.source, record, record.variants[-1], True, 3) == \
            (record, record.variants[-1])


# ----------------------------------------------------------------------------- nanochat's findings


def nanochat():
    return codebases.named("nanochat")


@needs_checkout
def test_a_checkout_whose_api_moved_from_the_checks_is_measured_not_to_apply(state, tmp_path):
    """n_kv_head renamed to n_kv_heads: the edits still find their constructs (the static table says
    they apply) but the checks fail on the pristine copy, so verify_fix could never pass."""
    copy = copy_of(Path(NANOCHAT_DIR), tmp_path / "nanochat", [("*", r"\bn_kv_head\b", "n_kv_heads")])
    record = load_catalog()[11]  # qk-norm-missing: its check builds a GPTConfig(n_kv_head=...)
    assert all(row["applies"] for row in nanochat().applicability(copy, [record]))  # the static table

    env = {**os.environ, "BUGDRILL_STATE_DIR": str(state)}
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "server.cli", "doctor", "--codebase", str(copy), "--measure",
                           "--bugs", "11", "--json"], capture_output=True, text=True, env=env, timeout=900)
    print(f"doctor --measure --bugs 11: {time.time() - started:.1f} s; {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [row["variant"] for row in rows] == ["deleted", "queries-only"]
    for row in rows:
        measured = row["measured"]
        assert not measured["applies"] and measured["reason"].startswith(CHECK_MOVED + ": "), measured
        assert "n_kv_head" in measured["reason"], measured["reason"]
    assert [row["measured"]["cached"] for row in rows] == [False, False]

    with pytest.raises(CodebaseError, match=re.escape(CHECK_MOVED)) as refused:  # an interview's draw: cached
        applicable_pick(nanochat(), copy, record, variant_of(record, "deleted"), True, 0)
    assert "does not apply to this nanochat checkout" in str(refused.value)


@needs_checkout
def test_an_edit_that_becomes_layout_only_on_a_checkout_is_measured_not_to_apply(state, tmp_path):
    """`q, k = norm(q), norm(k)` split into two lines: queries-only (drop the keys' norm) becomes a
    comment change the static table accepts; measured, it is no bug, and the doctor shows it."""
    from server.doctor import diagnose, table

    copy = copy_of(Path(NANOCHAT_DIR), tmp_path / "nanochat",
                   [("nanochat/gpt.py", r"q, k = norm\(q\), norm\(k\) # QK norm", "q = norm(q)\n        k = norm(k)")])
    record = load_catalog()[11]
    queries_only = variant_of(record, "queries-only")
    assert all(row["applies"] for row in nanochat().applicability(copy, [record]))  # the static table

    row = measure(nanochat(), copy, record, queries_only, run=False)
    assert (row["applies"], row["reason"]) == (False, LAYOUT_ONLY)
    with pytest.raises(CodebaseError, match=re.escape(LAYOUT_ONLY)):
        applicable_pick(nanochat(), copy, record, queries_only, False, 0)

    report = diagnose(copy, bugs={11})  # without --measure: the cached verdict, said to be one
    shown = {r["variant"]: r["measured"] for r in report["rows"]}
    assert shown["queries-only"]["reason"] == LAYOUT_ONLY and shown["queries-only"]["cached"]
    assert shown["deleted"] is None
    assert f"measured: does not apply: {LAYOUT_ONLY} (cached)" in table(report)
    assert "None of" not in report["summary"] and "1 not measured yet" in report["summary"], report["summary"]


@needs_checkout
def test_an_edit_on_a_path_training_never_takes_is_offered_for_code_review_only(state, tmp_path):
    """Bug 4 off-by-one edits the explicit-mask branch of flash_attention.py, which the default run
    never takes: its check sees it, its run is the baseline's, so production debugging refuses it
    and reveal says what was measured on this checkout instead of picochat's symptom."""
    from sandbox.codebase import text_copy

    copy = tmp_path / "nanochat"
    text_copy(NANOCHAT_DIR, copy)
    record = load_catalog()[4]
    off_by_one = variant_of(record, "off-by-one")
    started = time.time()
    row = measure(nanochat(), copy, record, off_by_one, run=True)
    print(f"bug 4 off-by-one measured (checks, baseline and run): {time.time() - started:.1f} s: {row['reason']}")
    assert (row["applies"], row["ran"], row["production_debugging"]) == (True, True, False), row
    assert row["reason"] == f"{CODE_REVIEW_ONLY}: the default run ({row['steps']} steps) is identical to the " \
                            "baseline's", row["reason"]

    with pytest.raises(CodebaseError, match="for production debugging") as refused:
        applicable_pick(nanochat(), copy, record, off_by_one, False, 0, run=True)
    assert row["reason"] in str(refused.value)
    assert applicable_pick(nanochat(), copy, record, off_by_one, False, 0) == (record, off_by_one)  # code review
    said = nanochat().symptom_here(4, copy, "off-by-one")
    assert row["reason"] in said and "On nanochat" not in said and "Not measured" not in said, said
