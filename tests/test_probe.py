"""The telemetry probe (sandbox/probe), loaded from outside into training processes the way the
runner loads it: its directory first on PYTHONPATH and BUGDRILL_PROBE_DIR set. Each test runs
a real training script in a subprocess and reads the JSONL records it left."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bug_catalog.support import run_ranks
from sandbox.codebase import copy_codebase
from sandbox.codebases.picochat import PICOCHAT_DIR

PROBE_DIR = Path(__file__).resolve().parents[1] / "sandbox" / "probe"
QUICK = ["--preset=tiny", "--eval_every=6", "--eval_batches=2", "--num_samples=0"]
STEP_LOSS = re.compile(r"^step (\d+)/\d+ .*?\| loss: ([\d.]+) \| lr: \S+ \| grad norm: ([\d.]+)", re.M)
# figures that depend on the clock, not on the numerics
TIMINGS = re.compile(r"dt: \d+ms \| tok/sec: [\d,]+|time: [\d.]+s")


def run(command, cwd, probe_dir=None, timeout=120, **env):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    full_env.pop("BUGDRILL_PROBE_DIR", None)
    if probe_dir is not None:
        full_env.update(PYTHONPATH=str(PROBE_DIR), BUGDRILL_PROBE_DIR=str(probe_dir))
    def clear_probe_files():  # the probe appends: a rerun starts from empty files
        for path in Path(probe_dir).glob("rank*.jsonl") if probe_dir else []:
            path.unlink()

    result = run_ranks(command, on_retry=clear_probe_files, cwd=cwd, env=full_env, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def records(path, kind=None):
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [r for r in lines if kind is None or r["type"] == kind]


def by_step(path, kind):
    return {r["step"]: r for r in records(path, kind)}


@pytest.fixture(scope="module")
def picochat(tmp_path_factory):
    """A copy of the codebase whose corpus is built by the first run that needs it."""
    return copy_codebase(PICOCHAT_DIR, tmp_path_factory.mktemp("probe") / "picochat")


def train_picochat(workdir, probe_dir, *flags, nproc=1):
    launcher = [] if nproc == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = [sys.executable, *launcher, "-m", "scripts.base_train", *QUICK, *flags]
    return run(command, workdir, probe_dir, PICOCHAT_BASE_DIR=str(workdir / ".picochat"))


@pytest.fixture(scope="module")
def picochat_run(picochat, tmp_path_factory):
    """12 steps of picochat tiny with the probe: (stdout, rank0.jsonl)."""
    probe_dir = tmp_path_factory.mktemp("probe-out")
    out = train_picochat(picochat, probe_dir, "--num_iterations=12")
    return out, probe_dir / "rank0.jsonl"


MLP_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
for step in range(1, 9):
    losses = []
    for micro in range(2):  # gradient accumulation: two micro-batches of 8 per step
        rows = slice(16 * (step % 4) + 8 * micro, 16 * (step % 4) + 8 * micro + 8)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        (loss / 2).backward()
        losses.append(loss.item())
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())).item()
    opt.step(); sched.step(); opt.zero_grad()
    with torch.no_grad():
        model.eval(); model(x); model.train()  # evaluation is not training: no tokens, no loss
    print(f"step {step} loss {sum(losses) / 2:.6f} norm {norm:.6f}")
"""


def test_a_plain_training_loop_gets_loss_lr_and_grad_norms(tmp_path):
    script = tmp_path / "mlp.py"
    script.write_text(MLP_SCRIPT)
    out = run([sys.executable, str(script)], tmp_path, tmp_path / "probe")
    lines = re.findall(r"step (\d+) loss (\S+) norm (\S+)", out)
    printed = {int(step): (float(loss), float(norm)) for step, loss, norm in lines}
    steps = by_step(tmp_path / "probe" / "rank0.jsonl", "step")
    assert sorted(steps) == list(range(1, 9))
    for step, (loss, norm) in printed.items():
        assert steps[step]["loss"] == pytest.approx(loss, abs=1e-5)
        assert steps[step]["grad_norm"] == pytest.approx(norm, rel=1e-4)
        assert steps[step]["lr"] == [pytest.approx(0.1 * 0.5 ** (step - 1))]
        assert steps[step]["weight_decay"] == [0.01]
        assert steps[step]["tokens"] == 16  # float input: one per row, eval forwards left out
    details = by_step(tmp_path / "probe" / "rank0.jsonl", "detail")
    assert sorted(details) == [1, 2, 3, 4, 5]  # the first 5 steps; the next sample is step 10
    assert set(details[1]["act_rms"]) == {"0", "1", "2"}
    assert set(details[1]["grad_norm"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert all(0 < r < 1 for r in details[1]["update_ratio"].values())
    assert records(tmp_path / "probe" / "rank0.jsonl")[-1] == {"type": "end", "steps": 8, "reason": "exit"}


def test_picochat_steps_details_and_attention(picochat_run):
    out, path = picochat_run
    steps, details = by_step(path, "step"), by_step(path, "detail")
    assert sorted(steps) == list(range(1, 13))
    assert sorted(details) == [1, 2, 3, 4, 5, 10]
    printed = {int(s): (float(loss), float(norm)) for s, loss, norm in STEP_LOSS.findall(out)}
    for step, (loss, norm) in printed.items():
        assert steps[step]["loss"] == pytest.approx(loss, abs=1e-4)
        # picochat logs the norm before clipping, which is the norm at the end of backward
        assert steps[step]["grad_norm_backward"] == pytest.approx(norm, abs=1e-4)
        assert steps[step]["grad_norm"] <= 1.0 + 1e-4  # clipped to 1.0 before the optimizer sees it
        assert steps[step]["tokens"] == 16 * 64 and steps[step]["nonfinite_grads"] == 0
    for detail in details.values():
        assert {"blocks.0", "blocks.1"} <= set(detail["act_rms"])
        assert set(detail["attention"]) == {"blocks.0.attn", "blocks.1.attn"}
        for stats in detail["attention"].values():
            assert 0 < stats["entropy"] < math.log(64) and stats["heads"] == 4
            assert math.isfinite(stats["max_logit"])
    assert records(path, "nonfinite") == [] and records(path, "probe_error") == []


def test_the_probe_does_not_change_the_numerics(picochat, picochat_run):
    with_probe, _ = picochat_run
    without = train_picochat(picochat, None, "--num_iterations=12")
    assert STEP_LOSS.findall(without)
    assert TIMINGS.sub("", with_probe) == TIMINGS.sub("", without)


NAN_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F

class NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()
    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")

class Faulty(nn.Module):
    calls = 0
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(16, 16)
    def forward(self, x):
        self.calls += 1
        if self.calls == 2:
            return NanGradient.apply(x)  # forward stays finite; backward turns NaN
        # at step 3 the Inf is made here, in this module's own code, before `inner` sees it
        return self.inner(x / 0.0 if self.calls == 3 else x)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.faulty, self.head = nn.Linear(8, 16), Faulty(), nn.Linear(16, 3)
    def forward(self, x):
        return self.head(torch.relu(self.faulty(self.body(x))))

torch.manual_seed(0)
model, x, y = Net(), torch.randn(32, 8), torch.randint(0, 3, (32,))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu")  # skips the optimizer step when gradients are not finite
for step in range(6):
    loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
"""


def test_nan_origin_is_named_in_forward_backward_and_loss(tmp_path):
    script = tmp_path / "nan.py"
    script.write_text(NAN_SCRIPT)
    run([sys.executable, str(script)], tmp_path, tmp_path / "probe")
    path = tmp_path / "probe" / "rank0.jsonl"
    nonfinite = {r["phase"]: r for r in records(path, "nonfinite")}
    assert nonfinite["backward"]["step"] == 2 and nonfinite["backward"]["module"] == "body"
    assert nonfinite["backward"]["param"] in ("body.weight", "body.bias")
    assert nonfinite["forward"]["step"] == 3 and nonfinite["forward"]["module"] == "faulty"
    assert nonfinite["forward"]["tensor"] == "output"
    assert "first seen in the input of 'faulty.inner'" in nonfinite["forward"]["message"]
    assert nonfinite["loss"]["step"] == 3
    steps = by_step(path, "step")
    assert sorted(steps) == list(range(1, 7))  # steps the scaler skipped are counted too
    assert [s for s in steps if steps[s].get("skipped")] == [2, 3]
    assert steps[2]["nonfinite_grads"] > 0 and math.isnan(steps[3]["loss"])
    assert records(path, "probe_error") == []


NORM_WITHOUT_EPS_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F

class NormWithoutEps(nn.Module):  # 0 / 0 on an all-zero row
    def forward(self, x):
        return x / x.pow(2).mean(-1, keepdim=True).sqrt()

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16, bias=False), NormWithoutEps(), nn.Linear(16, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(1, 4):
    x = torch.zeros(4, 8) if step == 2 else torch.randn(4, 8)
    F.cross_entropy(model(x), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    opt.zero_grad()
"""


def test_a_module_making_nan_from_finite_input_is_blamed(tmp_path):
    script = tmp_path / "norm.py"
    script.write_text(NORM_WITHOUT_EPS_SCRIPT)
    run([sys.executable, str(script)], tmp_path, tmp_path / "probe")
    forward = [r for r in records(tmp_path / "probe" / "rank0.jsonl", "nonfinite") if r["phase"] == "forward"]
    assert [(r["step"], r["module"]) for r in forward] == [(2, "1")]
    assert "sum of the output: nan" in forward[0]["message"]


def test_sdpa_attention_gets_the_same_statistics_as_the_explicit_path(picochat, tmp_path):
    # same seed and no dropout: the same weights at steps 1 and 2 whichever attention path runs,
    # so the matrix the probe recomputes for SDPA must match the explicit path's softmax
    stats = {}
    for impl in ("sdpa", "explicit"):
        train_picochat(picochat, tmp_path / impl, "--num_iterations=2", f"--attn_impl={impl}", "--dropout=0")
        details = by_step(tmp_path / impl / "rank0.jsonl", "detail")
        assert sorted(details) == [1, 2]
        stats[impl] = {(step, name): s for step, d in details.items() for name, s in d["attention"].items()}
    assert {name for _, name in stats["sdpa"]} == {"blocks.0.attn", "blocks.1.attn"}
    for key, explicit in stats["explicit"].items():
        assert 0 < stats["sdpa"][key]["entropy"] < math.log(64)
        assert stats["sdpa"][key]["entropy"] == pytest.approx(explicit["entropy"], rel=2e-2)
        assert stats["sdpa"][key]["max_logit"] == pytest.approx(explicit["max_logit"], rel=2e-2)


def test_two_ranks_under_torchrun_write_one_file_each(picochat, tmp_path):
    train_picochat(picochat, tmp_path, "--num_iterations=4", nproc=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    metas = [records(tmp_path / f"rank{r}.jsonl", "meta") for r in (0, 1)]
    # one meta line each: the launcher, which trains nothing, wrote nothing
    assert [[(m["rank"], m["world_size"]) for m in meta] for meta in metas] == [[(0, 2)], [(1, 2)]]
    for rank in (0, 1):
        assert sorted(by_step(tmp_path / f"rank{rank}.jsonl", "step")) == [1, 2, 3, 4]
        detail = by_step(tmp_path / f"rank{rank}.jsonl", "detail")[1]
        assert "blocks.0.attn.c_q.weight" in detail["grad_norm"]  # DDP's `module.` prefix removed


FAILING_PROBE_SCRIPT = """
import bugdrill_probe  # the module sitecustomize loaded: break one of its helpers
bugdrill_probe._count_tokens = lambda args: 1 / 0
""" + MLP_SCRIPT


def test_an_error_inside_the_probe_is_recorded_once_and_training_goes_on(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_PROBE_SCRIPT)
    out = run([sys.executable, str(script)], tmp_path, tmp_path / "probe")
    assert len(re.findall(r"^step \d+ loss", out, re.M)) == 8
    path = tmp_path / "probe" / "rank0.jsonl"
    errors = records(path, "probe_error")
    assert [e["feature"] for e in errors] == ["forward"] and "ZeroDivisionError" in errors[0]["error"]
    assert sorted(by_step(path, "step")) == list(range(1, 9))  # the optimizer hooks still report


CHECK_SITE = "import os, sys; print(os.environ.get('CHAINED'), 'bugdrill_probe' in sys.modules, 'torch' in sys.modules)"


def test_sitecustomize_chains_to_the_one_it_shadows_and_waits_for_torch(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    env = {**os.environ, "PYTHONPATH": f"{PROBE_DIR}{os.pathsep}{other}"}
    env.pop("BUGDRILL_PROBE_DIR", None)
    command = [sys.executable, "-c", CHECK_SITE]
    plain = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    probed = subprocess.run(command, env={**env, "BUGDRILL_PROBE_DIR": str(tmp_path / "probe")},
                            capture_output=True, text=True, timeout=30)
    assert plain.stdout.split() == ["yes", "False", "False"]  # no probe without BUGDRILL_PROBE_DIR
    assert probed.stdout.split() == ["yes", "True", "False"]  # loaded, but torch is not imported early
    assert not (tmp_path / "probe").exists()  # a process that trains nothing writes nothing
