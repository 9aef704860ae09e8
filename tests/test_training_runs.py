"""Whole-script behaviour of the practice codebase: each test runs its scripts in a subprocess,
the way a candidate would, on a fresh copy, and reads what they print."""

import os
import re
import shutil
import sys

import pytest

from bug_catalog.support import run_ranks

STEP_LOSS = re.compile(r"^step (\d+)/\d+ .*?\| loss: ([\d.]+)", re.M)
VAL_LINE = re.compile(r"^step (\d+) \| val loss: ([\d.]+) \| val bpb: ([\d.]+) \| entropy floor bpb: ([\d.]+)", re.M)

# small enough for seconds on two cores; dropout 0 so ranks and resumes draw no dropout noise
QUICK = ["--preset=tiny", "--eval_every=5", "--eval_batches=4", "--num_samples=0"]


@pytest.fixture(scope="module")
def workspace(picochat_dir, tmp_path_factory):
    """One copy of the codebase with its corpus built once for the module."""
    root = tmp_path_factory.mktemp("picochat") / "picochat"
    shutil.copytree(picochat_dir, root, ignore=shutil.ignore_patterns("__pycache__", ".picochat"))
    return root


def run_script(workspace, module, *flags, base_dir=None, nproc=1, timeout=300):
    env = {**os.environ, "PICOCHAT_BASE_DIR": str(base_dir or workspace / ".picochat")}
    if nproc == 1:
        command = [sys.executable, "-m", module, *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={nproc}", "-m", module, *flags]
    result = run_ranks(command, cwd=workspace, env=env, timeout=timeout)
    assert result.returncode == 0, f"{module} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def losses(output):
    return [(int(step), float(loss)) for step, loss in STEP_LOSS.findall(output)]


def test_same_seed_gives_the_same_loss_curve(workspace):
    first = run_script(workspace, "scripts.base_train", *QUICK, "--num_iterations=8")
    second = run_script(workspace, "scripts.base_train", *QUICK, "--num_iterations=8")
    assert len(losses(first)) == 8
    assert losses(first) == losses(second)


def test_a_different_seed_gives_a_different_curve(workspace):
    first = run_script(workspace, "scripts.base_train", *QUICK, "--num_iterations=4", "--seed=1")
    second = run_script(workspace, "scripts.base_train", *QUICK, "--num_iterations=4", "--seed=2")
    assert losses(first) != losses(second)


def test_validation_falls_toward_but_never_below_the_entropy_floor(workspace):
    out = run_script(workspace, "scripts.base_train", "--preset=tiny", "--num_iterations=60",
                     "--eval_every=20", "--num_samples=0")
    vals = [(int(s), float(bpb), float(floor)) for s, _, bpb, floor in VAL_LINE.findall(out)]
    assert [s for s, _, _ in vals] == [0, 20, 40, 60]
    start, end, floor = vals[0][1], vals[-1][1], vals[0][2]
    assert all(bpb > floor for _, bpb, _ in vals)
    assert (start - end) / (start - floor) > 0.4, vals


def test_resume_continues_exactly_where_the_run_left_off(workspace, tmp_path):
    flags = [*QUICK, "--dropout=0.1", f"--checkpoint_dir={tmp_path}"]
    straight = losses(run_script(workspace, "scripts.base_train", *flags, "--num_iterations=10"))
    # a run stopped at step 5 (its checkpoint), resumed to step 10
    stopped = run_script(workspace, "scripts.base_train", *flags, "--num_iterations=5")
    resumed = losses(run_script(workspace, "scripts.base_train", *flags, "--num_iterations=10", "--resume=true"))
    assert losses(stopped) == straight[:5]
    assert [s for s, _ in resumed] == list(range(6, 11))
    assert resumed == straight[5:]


def test_two_ranks_match_one_rank_on_the_same_global_batch(workspace):
    flags = [*QUICK, "--dropout=0.0", "--num_iterations=4", "--dtype=float32"]
    one_rank = losses(run_script(workspace, "scripts.base_train", *flags, "--device_batch_size=8",
                                 "--total_batch_size=1024"))
    two_ranks = losses(run_script(workspace, "scripts.base_train", *flags, "--device_batch_size=8",
                                  "--total_batch_size=1024", nproc=2))
    assert len(one_rank) == len(two_ranks) == 4
    for (_, a), (_, b) in zip(one_rank, two_ranks):
        assert a == pytest.approx(b, rel=1e-3)


def test_gradient_accumulation_matches_one_big_batch(workspace):
    flags = [*QUICK, "--dropout=0.0", "--num_iterations=4", "--dtype=float32"]
    big = losses(run_script(workspace, "scripts.base_train", *flags, "--device_batch_size=16"))
    accumulated = losses(run_script(workspace, "scripts.base_train", *flags, "--device_batch_size=8",
                                    "--total_batch_size=1024"))
    for (_, a), (_, b) in zip(big, accumulated):
        assert a == pytest.approx(b, rel=1e-3)


def test_chat_fine_tuning_learns_from_scratch(workspace):
    out = run_script(workspace, "scripts.chat_sft", "--preset=tiny", "--init_from=scratch",
                     "--num_iterations=20", "--eval_every=10")
    curve = [float(loss) for loss in re.findall(r"^step \d+/\d+ \| loss: ([\d.]+)", out, re.M)]
    assert len(curve) == 20
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5
    assert "answer accuracy" in out


def test_eval_script_reports_every_metric(workspace, tmp_path):
    run_script(workspace, "scripts.base_train", *QUICK, "--num_iterations=5")
    out = run_script(workspace, "scripts.base_eval", "--preset=tiny", "--num_samples=2", "--probe_epochs=3")
    for metric in ("val bpb", "next-token accuracy", "samples the grammar parses", "balanced_accuracy",
                   "rare_class_recall"):
        assert metric in out
