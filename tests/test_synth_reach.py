"""Reach: a mutant is measured only in the runs that execute the statement it changed. The pristine
checkout's runs are traced line by line (sandbox/probe/bugdrill_lines.py) once per request; a
mutant of a function no run calls is recorded as unreached without a run of its own. A mutant
whose training fails before its first stage (seen on nanochat: the whole build stopped with
'training run ... has no stage yet') is recorded as setup_failed and the build goes on. A run
stopped at its wall-time limit is a hang only when a second run with twice the limit stops too."""

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from bug_synth.operators import Mutant
from bug_synth.reach import Reach, changed_lines, reaches, runs_reaching
from sandbox.training import Training, TrainingRequest, save

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER = REPO / "tests" / "fixtures" / "classifier"
PLUGIN = REPO / "tests" / "fixtures" / "classifier_codebase.py"
UNCALLED = '''

def mirrored(features):
    """Never called by train.py: a mutant here changes nothing any run executes."""
    return features * -1.0
'''

ORIGINAL = textwrap.dedent('''\
    import math


    @staticmethod
    def scaled(x):
        return x * math.sqrt(2.0)


    def unused(x):
        y = x + 1
        return y


    def main():
        for i in range(3):
            print(scaled(i))
''')


def test_a_changed_statement_reaches_a_run_that_executed_any_line_of_it():
    executed = {1, 4, 5, 6, 9, 14, 15, 16}  # main ran, and scaled; unused was only defined
    in_unused = ORIGINAL.replace("y = x + 1", "y = x - 1")
    in_scaled = ORIGINAL.replace("math.sqrt(2.0)", "2.0")
    no_decorator = ORIGINAL.replace("@staticmethod\n", "")
    assert changed_lines(ORIGINAL, in_unused) == {10}
    assert not reaches(ORIGINAL, in_unused, executed)
    assert reaches(ORIGINAL, in_scaled, executed)
    assert reaches(ORIGINAL, no_decorator, executed)  # a decorator runs with its definition
    assert not reaches(ORIGINAL, in_scaled, {1, 9, 14})  # defined, never called


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A checkout of the classifier fixture with a function no run calls, loaded as a codebase."""
    root = tmp_path_factory.mktemp("reach")
    checkout = root / "classifier"
    shutil.copytree(CLASSIFIER, checkout)
    data = checkout / "classifier" / "data.py"
    data.write_text(data.read_text() + UNCALLED)
    patch = pytest.MonkeyPatch()
    patch.setenv("BUGDRILL_STATE_DIR", str(root / "state"))
    patch.setenv("BUGDRILL_CODEBASES", str(PLUGIN))
    patch.setenv("OMP_NUM_THREADS", "1")
    from sandbox import codebases

    codebase = codebases.recognise(checkout)
    yield codebase, checkout
    patch.undo()


def test_a_traced_pristine_run_records_the_lines_it_ran_and_a_build_skips_an_unreached_mutant(classifier,
                                                                                            monkeypatch):
    from bug_synth import build as building
    from bug_synth.measure import plain_request
    from bug_synth.pool import Pool

    codebase, checkout = classifier
    request = codebase.request(plain_request(codebase), steps=20)
    pool = Pool(codebase, checkout)
    lines = Reach(codebase, checkout, pool.root).lines(request)
    data_text = (checkout / "classifier" / "data.py").read_text()
    uncalled_line = data_text.splitlines().index("    return features * -1.0") + 1
    assert lines is not None and lines["train.py"] and lines["classifier/model.py"]
    assert uncalled_line not in lines["classifier/data.py"]
    # the traced run is kept in the pool: a second build does not trace again
    (stored,) = (pool.root / "reach").glob("*.json")
    assert json.loads(stored.read_text())["lines"]["train.py"] == sorted(lines["train.py"])

    def mutant(file, old, new):
        text = (checkout / file).read_text()
        return Mutant("sign-flipped", file, text.splitlines().index(old) + 1, "", old.strip(), new.strip(),
                          text.replace(old, new), "hand-made", (("sign",),))

    unreached = mutant("classifier/data.py", "    return features * -1.0", "    return features * 1.0")
    reached_text = (checkout / "train.py").read_text()
    old = next(line for line in reached_text.splitlines() if "loss.backward()" in line)
    reached = mutant("train.py", old, old.replace("loss.backward()", "(-loss).backward()"))
    assert runs_reaching(Reach(codebase, checkout, pool.root), "classifier/data.py", data_text, unreached.text,
                         [request], 3) == []
    monkeypatch.setattr(building.operators, "mutants", lambda files, families=None: iter([unreached, reached]))
    report = building.build(codebase, checkout, budget_minutes=10, steps=20, limit=2, scenarios=0)
    rows = {row["file"]: row for row in pool.tried().values()}
    assert report.measured == 2 and report.unreached == 1
    assert rows["classifier/data.py"]["outcome"] == "unreached" and rows["classifier/data.py"]["tried_in"] == []
    assert rows["classifier/data.py"]["seconds"] == 0.0
    assert rows["train.py"]["outcome"] == "kept" and rows["train.py"]["tried_in"] == ["default"]


def test_a_traced_run_trains_exactly_as_an_untraced_one(classifier):
    """The tracer changes no number: the traced run's losses are the baseline's, bit for bit."""
    from bug_synth.measure import plain_request
    from sandbox import runner
    from sandbox.training import training_data

    codebase, checkout = classifier
    request = codebase.request(plain_request(codebase), steps=20)
    base = training_data(codebase.baseline(checkout, request))
    workspace = Path(os.environ["BUGDRILL_STATE_DIR"]).parent / "traced" / checkout.name
    shutil.copytree(checkout, workspace)
    with runner.tracing_lines():
        traced = training_data(codebase.train(workspace, request, label="traced"))
    assert [r["loss"] for r in traced.log.train] == [r["loss"] for r in base.log.train]
    assert list((traced.run_dir / "telemetry").glob("lines-*.json"))


def test_a_trace_that_failed_is_not_kept_so_the_next_build_traces_again(tmp_path, monkeypatch):
    from bug_synth import reach as reach_module

    class Request:
        def model_dump_json(self):
            return '{"scenario": "base"}'

    outcomes = [None, {"train.py": [3, 4]}]
    monkeypatch.setattr(reach_module, "traced_lines", lambda codebase, source, request: outcomes.pop(0))
    assert Reach(None, None, tmp_path).lines(Request()) is reach_module.UNKNOWN
    assert list((tmp_path / "reach").iterdir()) == []
    assert Reach(None, None, tmp_path).lines(Request()) == {"train.py": {3, 4}}
    assert Reach(None, None, tmp_path).lines(Request()) == {"train.py": {3, 4}}  # now read from disk
    assert outcomes == []


def test_a_mutant_that_fails_before_any_stage_is_recorded_and_the_build_goes_on(classifier, monkeypatch):
    from bug_synth import build as building
    from bug_synth.pool import Pool
    from bug_synth.synth_bug import mutant_id

    codebase, checkout = classifier
    text = (checkout / "train.py").read_text()
    old = next(line for line in text.splitlines() if "loss.backward()" in line)
    mutant = Mutant("sign-flipped", "train.py", text.splitlines().index(old) + 1, "", old.strip(),
                    old.strip().replace("loss.backward()", "(loss * 2).backward()"),
                    text.replace(old, old.replace("loss.backward()", "(loss * 2).backward()")), "hand-made", (("sign",),))
    real_train = codebase.train

    def train(workspace, request, *args, label="", **kwargs):
        if label != "synth":
            return real_train(workspace, request, *args, label=label, **kwargs)
        failed = Training(id="t-setup-failed", workspace=str(workspace), request=TrainingRequest(), state="failed",
                          message="the tokenizer training failed: exited with status 1: FileExistsError")
        save(failed)
        return failed

    monkeypatch.setattr(codebase, "train", train)
    monkeypatch.setattr(building.operators, "mutants", lambda files, families=None: iter([mutant]))
    report = building.build(codebase, checkout, budget_minutes=10, steps=20, limit=1, scenarios=0)
    row = Pool(codebase, checkout).tried()[mutant_id(mutant)]
    assert report.measured == 1 and report.kept == 0
    assert row["outcome"] == "setup_failed"
    assert "before its first stage" in row["detail"] and "FileExistsError" in row["detail"]


def stalled(checkout, seconds):
    """A hand-made mutant of train.py that waits `seconds` before it trains, and trains as before."""
    text = (checkout / "train.py").read_text()
    new = text.replace("def main(", f"__import__('time').sleep({seconds})\n\n\ndef main(", 1)
    line = new.splitlines().index(f"__import__('time').sleep({seconds})") + 1
    return Mutant("call-dropped", "train.py", line, "", "", f"__import__('time').sleep({seconds})", new,
                  "hand-made", (("sleep",),))


@pytest.mark.parametrize("seconds, hangs", [(17, False), (600, True)])
def test_a_run_stopped_at_its_limit_counts_as_a_hang_only_when_a_run_with_twice_the_limit_stops_too(
        classifier, monkeypatch, tmp_path, seconds, hangs):
    """A loaded machine makes a run wait for a CPU: one that passes the first limit only by waiting
    is not a hang (it counted as one, seen before the second run was made)."""
    from bug_synth import measure as measuring
    from bug_synth.measure import plain_request

    codebase, checkout = classifier
    request = codebase.request(plain_request(codebase), steps=20)
    monkeypatch.setattr(measuring, "bounded", lambda request, wall_s: request.model_copy(update={"wall_s": 15.0}))
    row, bug = measuring.measure(codebase, checkout, stalled(checkout, seconds), request, tmp_path)
    assert ("timed_out" in row.get("classes", [])) == hangs, row
    assert (row["outcome"] == "kept") == hangs and (bug is not None) == hangs
    if hangs:
        assert bug.request["wall_s"] == 30.0  # shown with the limit that stopped it the second time
