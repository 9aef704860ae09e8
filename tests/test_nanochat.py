"""The real karpathy/nanochat as a target codebase.

The catalogue's bookkeeping (every bug has a nanochat edit or a reason) is tested always. The
rest needs a checkout: set NANOCHAT_DIR to one (git clone https://github.com/karpathy/nanochat)
and install what it imports (pip install 'bugdrill[nanochat]'); otherwise it is skipped.
"""

import importlib.util
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from bug_catalog.registry import CHECKS, EDITS
from bug_catalog.targets.nanochat import (
    NOT_APPLICABLE, PREFIX, VARIANT_NOT_APPLICABLE, applicability, check_for, edit_for, variant_for,
)
from evals.tool_text import read_result
from sandbox.workspace import create_workspace

NANOCHAT_DIR = os.environ.get("NANOCHAT_DIR")
MISSING = [name for name in ("pyarrow", "rustbpe", "tiktoken", "wandb") if importlib.util.find_spec(name) is None]
needs_checkout = pytest.mark.skipif(
    not NANOCHAT_DIR or MISSING,
    reason="set NANOCHAT_DIR to a nanochat checkout to run this" if not NANOCHAT_DIR
    else f"nanochat's dependencies are missing ({', '.join(MISSING)}): pip install 'bugdrill[nanochat]'")
IMPORTS = ("import nanochat.gpt, nanochat.engine, nanochat.dataloader, nanochat.loss_eval, nanochat.core_eval, "
           "nanochat.tokenizer, nanochat.flash_attention, py_compile; "
           "py_compile.compile('scripts/base_train.py', doraise=True)")
NANOCHAT_CHECKS = sorted(name for name in CHECKS if name.startswith(PREFIX))


def picks():
    return [(record, variant) for record in sorted(load_catalog().values(), key=lambda r: r.id)
            for variant in record.variants]


def test_every_catalogue_variant_has_a_nanochat_edit_or_a_reason():
    for record, variant in picks():
        has_edit = edit_for(record, variant) is not None
        reasons = [NOT_APPLICABLE.get(record.id), VARIANT_NOT_APPLICABLE.get((record.id, variant.name))]
        assert has_edit != any(reasons), f"bug {record.id} {variant.name}: an edit and a reason, or neither"
        if has_edit:
            assert check_for(record) in CHECKS, f"bug {record.id} has a nanochat edit but no nanochat check"
    edits = {name for name in EDITS if name.startswith(PREFIX)}
    assert edits == {PREFIX + f"{r.slug}.{v.name}" for r, v in picks() if edit_for(r, v)}, "an edit no variant names"


def test_an_answer_keys_bug_names_its_own_codebases_check():
    from bug_catalog.targets import check_name

    for record, variant in picks():
        assert check_name(record, {"edit": variant.edit}) == record.check
        if edit_for(record, variant):
            picked = variant_for(record, variant)
            assert check_name(record, {"edit": picked.edit}) == check_for(record) == PREFIX + record.check


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The checkout's text files (blind workspaces copy text only)."""
    from sandbox.codebase import text_copy

    path = tmp_path_factory.mktemp("nanochat-source") / "nanochat"
    text_copy(NANOCHAT_DIR, path)
    return path


@needs_checkout
def test_doctor_lists_where_each_bug_applies_and_why_the_others_do_not(source):
    rows = applicability(NANOCHAT_DIR)
    assert len(rows) == len(picks())
    for row, (record, variant) in zip(rows, picks()):
        assert (row["bug"], row["variant"]) == (record.id, variant.name)
        if row["applies"]:
            assert row["where"].split(":")[0] == edit_for(record, variant).file and row["function"]
        else:
            assert row["reason"], f"bug {row['bug']} {row['variant']} does not apply and says not why"
    result = subprocess.run([sys.executable, "-m", "server.cli", "doctor", "--codebase", NANOCHAT_DIR],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "catalogue bugs apply" in result.stdout
    assert "does not apply:" in result.stdout and "no dropout" in result.stdout


def test_doctor_says_plainly_when_a_codebase_is_neither(tmp_path):
    (tmp_path / "train.py").write_text("print('hello')\n")
    result = subprocess.run([sys.executable, "-m", "server.cli", "doctor", "--codebase", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "not a checkout bugdrill recognises" in result.stdout
    assert "picochat/gpt.py" in result.stdout and "scripts/tok_train.py" in result.stdout  # what each looks for


@needs_checkout
def test_the_pristine_checkout_passes_every_nanochat_check(source, tmp_path):
    workspace = tmp_path / "pristine" / "nanochat"
    create_workspace(workspace, source, [], "nanochat")
    results = run_checks(workspace, NANOCHAT_CHECKS, timeout=900, jobs=2)
    failed = {name: r["detail"] for name, r in results.items() if not r["passed"]}
    assert not failed, failed


@needs_checkout
def test_each_applicable_variant_injects_silently_still_imports_and_fails_its_check(source, tmp_path):
    applying = {(row["bug"], row["variant"]) for row in applicability(source) if row["applies"]}
    chosen = [(r, v) for r, v in picks() if (r.id, v.name) in applying]
    assert len(chosen) >= 30, f"only {len(chosen)} variants apply to this checkout"

    def one(pick):
        record, variant = pick
        workspace = tmp_path / f"{record.id}-{variant.name}" / "nanochat"
        key = create_workspace(workspace, source, [(record, variant_for(record, variant))], "nanochat")
        problems = []
        bugged = (workspace / key["bugs"][0]["file"]).read_text()
        if any(word in bugged.lower() for word in ("bugdrill", "injected")):
            problems.append("the bugged file mentions the injection")
        imported = subprocess.run([sys.executable, "-c", IMPORTS], cwd=workspace, capture_output=True, text=True)
        if imported.returncode != 0:
            problems.append(f"does not import: {imported.stderr[-300:]}")
        result = run_checks(workspace, [check_for(record)], timeout=600)[check_for(record)]
        if result["passed"]:
            problems.append(f"its check {check_for(record)} passes")
        return f"{record.id} {variant.name}", problems

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(pool.map(one, chosen))
    assert not any(outcomes.values()), {name: p for name, p in outcomes.items() if p}


@needs_checkout
def test_a_short_cpu_run_of_base_train_records_the_probes_telemetry(source, tmp_path, monkeypatch):
    from sandbox.codebases.nanochat.runs import NanochatRequest, train
    from sandbox.training import training_data

    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    workspace = tmp_path / "run" / "nanochat"
    create_workspace(workspace, source, [], "nanochat")
    started = time.time()
    training = train(workspace, NanochatRequest(steps=10, eval_every=5, device_type="cpu"))
    print(f"10 steps of base_train on the CPU, data and tokenizer included: {time.time() - started:.1f} s")
    assert training.state == "finished", training.message
    data = training_data(training)
    steps = data.steps
    assert [r["step"] for r in steps] == list(range(1, 11))
    for record in steps:
        assert record["loss"] > 0 and record["grad_norm"] > 0 and len(record["lr"]) >= 2
    assert [r["step"] for r in data.log.train] == list(range(1, 11)), "log steps read as steps done"
    assert [r["step"] for r in data.log.evals] == [0, 5, 10] and all(r["val bpb"] > 0 for r in data.log.evals)
    assert not list(Path(workspace).rglob("*.parquet")), "data went into the workspace"


def said(result):
    """Everything a tool result says, lowercased: its text and its structured content."""
    import json

    return ("\n".join(c.text for c in result.content if c.type == "text")
            + json.dumps(result.structured_content)).lower()


@needs_checkout
@pytest.mark.anyio
async def test_an_interview_over_mcp_on_a_nanochat_checkout_runs_nanochat_and_verifies_by_its_checks(server_state):
    from mcp import Client

    from sandbox.workspace import load_answer_key
    from server.app import build_server
    from mcp_calls import call

    record = load_catalog()[1]  # zero_grad deleted: nanochat's check fails, its run trains otherwise
    async with Client(build_server("interviewer")) as client:
        result = await client.call_tool("start_interview", {"kind": "production_debugging", "bug": "zero-grad",
                                                            "codebase": str(Path(NANOCHAT_DIR).resolve()), "seed": 3})
        assert not result.is_error, result.content[0].text
        started = result.structured_content
        interview, workspace = started["interview_id"], Path(started["workspace"])
        key = load_answer_key(workspace)
        assert key["codebase"] == "nanochat" and key["bugs"][0]["edit"].startswith(PREFIX)
        assert (workspace / "nanochat" / "gpt.py").is_file() and not list(workspace.rglob("*.png"))

        run = await client.call_tool("run_training", {"interview_id": interview, "steps": 20})
        assert not run.is_error, run.content[0].text
        report = run.structured_content
        assert report["state"] == "finished" and report["summary"], report
        assert any("scripts.base_train" in c for c in report["commands"]), report["commands"]
        for text in (said(result), said(run)):
            for giveaway in (record.slug, record.title.lower(), "zero_grad", "answer key"):
                assert giveaway not in text, f"a candidate-visible result names the bug: {giveaway!r}"

        log = await call(client, "get_view", interview_id=interview, run_id=report["run_id"], view="log", every=5)
        assert "val bpb" in log["text"] and "baseline" in log["text"], log["text"]
        plot = await client.call_tool("get_plot", {"interview_id": interview, "run_id": report["run_id"],
                                                    "view": "log"})
        assert not plot.is_error and plot.content[0].type == "image"
        listed = await call(client, "list_runs", interview_id=interview)
        assert [r["run_id"] for r in listed["runs"]] == [report["run_id"]]

        revealed = await call(client, "reveal", interview_id=interview)
        assert [(b["id"], b["file"]) for b in revealed["bugs"]] == [(1, "scripts/base_train.py")]
        assert "zero_grad" in revealed["bugs"][0]["diff"]
        # not picochat's symptom: what the draw measured on this very checkout, with its steps
        shown = revealed["bugs"][0]["symptom_on_this_codebase"]
        assert shown.startswith("Measured on this checkout") and "steps run" in shown, shown

        before = await call(client, "verify_fix", interview_id=interview)
        assert not before["fixed"] and any(c["bug_id"] == 1 and not c["passed"] for c in before["checks"]), before
        bug = key["bugs"][0]
        await call(client, "edit_file", interview_id=interview, path=bug["file"], content=bug["pristine"])
        after = await call(client, "verify_fix", interview_id=interview)
        assert after["fixed"], after
        names = {c["name"] for c in after["checks"]}
        assert PREFIX + record.check in names and "runs against the pristine code" in names, names


@needs_checkout
@pytest.mark.anyio
async def test_an_interview_on_nanochat_refuses_a_bug_with_no_home_there_and_says_why(server_state):
    from mcp import Client

    from server.app import build_server
    from mcp_calls import error

    async with Client(build_server("interviewer")) as client:
        message = await error(client, "start_interview", kind="practice", bug=21, codebase=str(Path(NANOCHAT_DIR)))
        assert "does not apply to this nanochat checkout" in message and NOT_APPLICABLE[21] in message, message


@pytest.fixture(scope="module")
def nanochat_evals(tmp_path_factory):
    """`inspect eval` on the checkout, the react path with the rule book as the model: production
    debugging on a control and bug 1 (bug 4 shows nothing in a run here, as measured: code review
    only); code review on a control and bug 4."""
    pytest.importorskip("inspect_ai")
    from evals.reference_agent import WHOLE_RESULTS
    from inspect_runs import inspect_eval

    root = tmp_path_factory.mktemp("nanochat-eval")
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state"), "BUGDRILL_EPISODES_DIR": str(root / "episodes"),
           "OMP_NUM_THREADS": "1"}
    common = ["--model", "bugdrill/rulebook", "--max-tool-output", str(WHOLE_RESULTS), "-T", "agent=react",
              "-T", f"codebase={Path(NANOCHAT_DIR).resolve()}"]
    _, production = inspect_eval([*common, "-T", "bugs=1", "-T", "bugs_per_episode=[0,1]", "--sample-id",
                                  "episode-001,episode-002"], env, root / "production", timeout=1800)
    _, review = inspect_eval([*common, "-T", "bugs=1,4", "-T", "bugs_per_episode=[0,1,2]", "-T", "kind=code_review",
                              "--sample-id", "episode-001,episode-003"], env, root / "review", timeout=1800)
    return root, production, review


@needs_checkout
def test_eval_episodes_run_on_a_nanochat_checkout(nanochat_evals):
    from inspect_runs import giveaways

    root, production, review = nanochat_evals
    for log in (production, review):
        assert log.status == "success"
        for sample in log.samples:
            assert "a nanochat checkout" in sample.input and "picochat" not in sample.input
            assert sample.metadata["codebase"] == str(Path(NANOCHAT_DIR).resolve())
            assert not giveaways(sample, root / "state"), giveaways(sample, root / "state")
            verdict = sample.scores["episode_scorer"].metadata
            assert [b["bug"] for b in verdict["bugs"]] == sample.metadata["bugs"]
    kinds = {s.id: s.metadata["bugs"] for s in production.samples}
    assert kinds == {"episode-001": [], "episode-002": [1]}
    control = next(s for s in production.samples if not s.metadata["bugs"]).scores["episode_scorer"]
    assert control.metadata["runs"] >= 1 and not control.metadata["false_positive"]  # it ran nanochat, claimed nothing


@needs_checkout
def test_an_eval_plan_draws_bug_4_for_code_review_only_as_measured_on_the_checkout(tmp_path, monkeypatch):
    from evals.episodes import PlanError, plan

    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    checkout = str(Path(NANOCHAT_DIR).resolve())
    with pytest.raises(PlanError, match="no bug matches"):
        plan(bugs="4", kind="production_debugging", codebase=checkout)
    assert [p.bug for e in plan(bugs="4", kind="code_review", codebase=checkout) for p in e.picks] == [4]


@needs_checkout
def test_a_code_review_on_nanochat_shows_a_window_of_nanochat_code_bug_or_none(nanochat_evals):
    _, _, review = nanochat_evals
    homes = {edit_for(r, v).file for r, v in picks() if edit_for(r, v)}
    for sample in review.samples:
        first = next(m for m in sample.messages if m.role == "tool")
        assert first.function == "get_snippet", first.function
        (window,) = read_result("get_snippet", first.text)["snippets"]  # the text, as the model read it
        assert window["path"] in homes, window["path"]  # a control's window also falls where bugs live
        numbered = [line.split(" | ", 1) for line in window["code"].splitlines()]
        assert 20 <= len(numbered) <= 30 and int(numbered[0][0]) == window["first_line"]
        if not sample.metadata["bugs"]:  # pristine code, shown with its own line numbers
            text = (Path(NANOCHAT_DIR) / window["path"]).read_text().splitlines()
            assert all(text[int(n) - 1] == code for n, code in numbered)


@needs_checkout
def test_inject_puts_nanochats_own_edit_in_and_refuses_a_bug_with_no_home(tmp_path):
    """`bugdrill inject --codebase CHECKOUT` injects the codebase's edit (it used to apply the
    built-in codebase's edit and fail), and a bug with no home there is a clear refusal."""
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state")}
    injected = subprocess.run([sys.executable, "-m", "server.cli", "inject", "1", "--codebase", NANOCHAT_DIR,
                               "--workspace", str(tmp_path / "w1"), "--seed", "0", "--reveal"],
                              capture_output=True, text=True, env=env, timeout=300)
    assert injected.returncode == 0, injected.stderr
    assert "scripts/base_train.py" in injected.stdout and "zero_grad" in injected.stdout
    refused = subprocess.run([sys.executable, "-m", "server.cli", "inject", "21", "--codebase", NANOCHAT_DIR,
                              "--workspace", str(tmp_path / "w2"), "--seed", "0"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode != 0 and "does not apply to this nanochat checkout" in refused.stderr
    assert not (tmp_path / "w2").exists()
