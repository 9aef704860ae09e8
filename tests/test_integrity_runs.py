"""Issue 15, points 4, 7 and 8: run flags as a way out, state that lies later, default runs that
single out a bug. Each attack was first watched succeeding on f1920a7's code.

* Flags: only picochat's own, each within its range; paths stay inside the run; the step cap
  holds after every flag; no --resume or --init_from pointing at a pickle the candidate names.
* A baseline that did not finish is not cached, and the tool says it failed.
* Runs and baselines whose owning process died (kill -9) are stopped when a server starts.
* The default run of an interview is its scenario's, shared by several bugs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from mcp import Client

from bug_catalog.catalog import load_catalog
from mcp_calls import call
from sandbox.codebases.nanochat import runs as nanochat
from sandbox.baselines import BaselineFailed, baseline
from sandbox.matrix import request_for, scenario_request
from sandbox.runner import run_result, stop_run
from sandbox.scenarios import FLAGS, ScenarioError, SCENARIOS, path_flags_inside
from sandbox.training import TrainingRequest, load_training, request_commands, trainings_dir
from server.app import build_server

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "sandbox" / "templates" / "picochat"


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


# --- the flag table against picochat's argparse ----------------------------------------------

# every script's parser, captured when its main() asks it to parse (so the flags are argparse's own)
CAPTURE_PARSERS = """
import argparse, importlib, json, sys
found = {}
class Captured(Exception):
    pass
def capture(parser, *args, **kwargs):
    found.update({a.dest: {"type": getattr(a.type, "__name__", "str"), "choices": list(a.choices or [])}
                  for a in parser._actions if a.option_strings and a.dest != "help"})
    raise Captured
argparse.ArgumentParser.parse_args = capture
flags = {}
for script in sys.argv[1:]:
    found.clear()
    try:
        importlib.import_module(script).main()
    except Captured:
        pass
    flags[script] = dict(found)
print(json.dumps(flags))
"""
ARGPARSE_KIND = {"int": "int", "float": "float", "str": "str", "_parse_bool": "bool"}


def script_parsers():
    scripts = sorted(f"scripts.{p.stem}" for p in (TEMPLATE / "scripts").glob("*.py") if p.stem != "__init__")
    result = subprocess.run([sys.executable, "-c", CAPTURE_PARSERS, *scripts], cwd=TEMPLATE, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_the_flag_table_and_the_scripts_argparse_agree():
    parsers = script_parsers()
    assert set(parsers) >= {"scripts.base_train", "scripts.chat_sft", "scripts.base_eval"}
    argparse_flags = {}
    for flags in parsers.values():
        argparse_flags.update(flags)
    assert set(FLAGS) == set(argparse_flags), "the flag table has drifted from the scripts' argparse"
    for name, parsed in argparse_flags.items():
        kind = FLAGS[name].kind
        assert ARGPARSE_KIND[parsed["type"]] == ("str" if kind == "path" else kind), name
        if parsed["choices"]:
            assert set(FLAGS[name].choices) <= set(parsed["choices"]), name


# --- flags as a way out ------------------------------------------------------------------------

ESCAPES = [
    ("base", ["--checkpoint_dir=/tmp/elsewhere"]),  # checkpoints written outside the workspace
    ("base", ["--checkpoint_dir=../../../elsewhere"]),
    ("base", ["--checkpoint_dir=~/elsewhere"]),
    ("base", ["--num_iterations=10000000"]),  # past the step cap, baseline included
    ("resume", ["--num_iterations=5000"]),
    ("base", ["--resume=true"]),  # torch.load(weights_only=False) of a file the candidate names
    ("base", ["--resume=true", "--checkpoint_dir=ckpt"]),
    ("sft", ["--init_from=/tmp/model.pt"]),  # the same through chat_sft's init_from
    ("sft", ["--init_from=ckpt/latest.pt"]),
    ("base", ["--no_such_flag=1"]),
    ("base", ["--lr=nan"]),
    ("base", ["--lr=inf"]),
    ("base", ["--n_embd=1000000"]),
    ("base", ["--num_workers=64"]),  # a process per worker
    ("base", ["--device=cuda:7"]),
    ("base", ["--seed=7"]),  # silently overridden by the request's seed: refused instead
    ("base", ["checkpoint_dir=/tmp/elsewhere"]),
]


@pytest.mark.parametrize("scenario, args", ESCAPES, ids=[" ".join(a) for _, a in ESCAPES])
def test_flags_that_leave_the_run_or_the_cap_are_refused(scenario, args):
    with pytest.raises(ScenarioError):
        request_commands(TrainingRequest(scenario=scenario, args=args))


def test_the_flags_the_catalogue_and_a_person_use_still_pass():
    requests = [request_for(r, v) for r in load_catalog().values() for v in r.variants]
    requests += [TrainingRequest(args=["--lr=1e-3", "--grad_clip=0", "--checkpoint_dir=ckpt", "--save_every=10",
                                       "--dtype=float32", "--attn_impl=sdpa", "--preset=small"]),
                 TrainingRequest(scenario="sft", args=["--init_from=scratch", "--lr=0.01"])]
    for request in requests:
        assert request_commands(request), request


def test_a_flag_given_again_takes_the_place_of_the_scenarios_own():
    """The command a candidate reads names each flag once: `--patience=0` asked of the `long`
    scenario (which sets it too) is not printed twice, and an override shows only its value."""
    for request in [request_for(r, v) for r in load_catalog().values() for v in r.variants] + [
            TrainingRequest(scenario="long", args=["--patience=0"]), TrainingRequest(scenario="sft", args=["--lr=0.01"])]:
        for argv, _ in request_commands(request):
            names = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
            assert len(names) == len(set(names)), (request, argv)


def test_a_path_flag_that_resolves_outside_through_a_symlink_is_refused(tmp_path):
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (workspace / "ckpt").symlink_to(outside)
    with pytest.raises(ScenarioError, match="outside"):
        path_flags_inside(["--checkpoint_dir=ckpt/run1"], workspace, tmp_path / "data")
    path_flags_inside(["--checkpoint_dir=mine/run1"], workspace, tmp_path / "data")


@pytest.mark.parametrize("args, steps", [
    (["--num-iterations=100000"], 60), (["--target-flops=1e20"], 60), (["--resume-from-step=10"], 60),
    (["--model-tag=../../elsewhere"], 60), (["--save-every=1"], 60), (["--matrix-lr=nan"], 60),
    (["--depth=64"], 60), ([], 100000),
])
def test_nanochat_accepts_only_its_small_set(args, steps):
    # model_copy, as Runs.request builds a request: pydantic's own bounds are not applied
    request = nanochat.NanochatRequest().model_copy(update={"args": args, "steps": steps})
    with pytest.raises(ScenarioError):
        nanochat.check_request(request)


def test_nanochat_keeps_steps_lr_depth_and_batch_flags():
    nanochat.check_request(nanochat.NanochatRequest(steps=2000, args=[
        "--matrix-lr=0.01", "--embedding-lr=0.2", "--depth=4", "--device-batch-size=4", "--total-batch-size=1024"]))


@pytest.mark.anyio
async def test_run_training_refuses_a_checkpoint_dir_outside_the_workspace(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug="zero-grad", seed=3)
        for args in ([f"--checkpoint_dir={elsewhere}"], ["--num_iterations=10000000"]):
            result = await client.call_tool("run_training", {"interview_id": started["interview_id"], "steps": 2,
                                                             "args": args})
            assert result.is_error, result.structured_content
            assert args[0].split("=")[0] in result.content[0].text
        listed = await call(client, "list_runs", interview_id=started["interview_id"])
    assert not elsewhere.exists()
    assert listed["runs"] == []


# --- baselines: only a finished one is cached --------------------------------------------------

def fake_codebase(root, script):
    """A codebase whose scripts/base_train.py is `script`: what a baseline does is up to the test."""
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "base_train.py").write_text(script)
    return root


def test_a_failed_baseline_is_not_cached(tmp_path):
    codebase = fake_codebase(tmp_path / "codebase", "import sys\nsys.exit(3)\n")
    request = TrainingRequest(steps=1)
    failures = []
    for _ in range(2):
        with pytest.raises(BaselineFailed) as raised:
            baseline(codebase, request)
        failures.append(raised.value.training.id)
    assert failures[0] != failures[1], "the second request reused the failed baseline"
    assert all(load_training(t).state == "failed" for t in failures)


def test_a_finished_baseline_is_cached(tmp_path):
    codebase = fake_codebase(tmp_path / "codebase", "print('done')\n")
    request = TrainingRequest(steps=1)
    first = baseline(codebase, request)
    assert first.state == "finished"
    assert baseline(codebase, request).id == first.id


@pytest.mark.anyio
async def test_run_training_says_the_baseline_failed(state):
    # a legal flag that the pristine code itself refuses (not a multiple of one forward pass)
    args = ["--total_batch_size=1000"]
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug="zero-grad", seed=3)
        result = await client.call_tool("run_training", {"interview_id": started["interview_id"], "steps": 2,
                                                         "args": args})
    assert result.is_error, result.structured_content
    assert "baseline" in result.content[0].text and "did not finish" in result.content[0].text
    assert not list((state / "baselines").glob("*.json")), "the failed baseline was cached"


# --- orphans: a starting server stops the runs of a server that died ---------------------------

SLEEPER = "import time\ntime.sleep(600)\n"
OWNERS = {
    "run": "from sandbox.training import TrainingRequest, train\ntrain(sys.argv[1], TrainingRequest(steps=1))",
    "baseline": "from sandbox.baselines import baseline\nfrom sandbox.training import TrainingRequest\n"
                "baseline(sys.argv[1], TrainingRequest(steps=1))",
}


def running_stage(owner, limit_s=300):
    """The run id of the owner's first stage once its supervisor runs it (None if the owner died)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and owner.poll() is None:
        for path in trainings_dir().glob("*.json"):
            stages = json.loads(path.read_text()).get("stages", [])
            if stages and run_result(stages[0]).state == "running":
                return path.stem, stages[0]
        time.sleep(0.2)
    return None, None


@pytest.mark.parametrize("kind", sorted(OWNERS))
def test_a_starting_server_stops_the_orphans_of_a_killed_one(kind, tmp_path):
    codebase = fake_codebase(tmp_path / "codebase", SLEEPER)
    owner = subprocess.Popen([sys.executable, "-c", "import sys\n" + OWNERS[kind], str(codebase)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    training_id, run_id = running_stage(owner)
    try:
        assert run_id, owner.stderr.read().decode()[-2000:] if owner.poll() is not None else "no stage started"
        build_server("interviewer")
        assert run_result(run_id).state == "running", "a live owner's run was stopped"

        owner.send_signal(signal.SIGKILL)
        owner.wait()
        build_server("interviewer")
        assert run_result(run_id).state == "stopped"
        assert load_training(training_id).state == "interrupted"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if run_id:
            stop_run(run_id)


# --- default runs that single out a bug -------------------------------------------------------

def default_requests():
    """{(scenario, steps, flags): bug ids} of every catalogue variant's default run."""
    by_request = defaultdict(set)
    for record in load_catalog().values():
        for variant in record.variants:
            request = scenario_request(record, variant)
            by_request[(request.scenario, request.steps, tuple(request.args))].add(record.id)
    return by_request


def test_default_runs_come_from_the_scenario_not_the_bug():
    by_request = default_requests()
    for (scenario, steps, args), bugs in by_request.items():
        assert steps is None and args == (), f"bug(s) {sorted(bugs)} open with a recipe of their own"
    assert set(s for s, _, _ in by_request) <= set(SCENARIOS)
    # the runs shared by many bugs stay shared; a scenario of one bug is the only way one stands alone
    singles = {request: bugs for request, bugs in by_request.items() if len(bugs) == 1}
    assert len(singles) < len(by_request) / 2, singles
