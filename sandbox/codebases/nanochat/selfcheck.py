"""The self-check's nanochat rows: a short base_train of a nanochat checkout with torch.compile
on and off, and whether the probe's hooks saw its optimizer steps.

sandbox/codebases/nanochat/runs.py always trains with TORCHDYNAMO_DISABLE=1 (compiled code bypasses the probe's
module hooks, and on a CPU the compile alone takes about a minute); the compiled run here is
the one place that runs nanochat as its authors do, to measure what that costs the probe.
"""

import shutil
import tempfile
from pathlib import Path

from sandbox import runner
from sandbox.codebase import text_copy
from sandbox.codebases.nanochat.runs import NanochatRequest, prepare_data
from sandbox.rundata import load_run_data


def nanochat_run(checkout, request, compiled):
    """One probed base_train of a fresh text copy of the checkout (pristine code: not jailed, as
    its baseline is not), data and tokenizer prepared offline; returns (RunResult, RunData)."""
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-selfcheck-nanochat-"))
    try:
        workspace = scratch / "nanochat"
        text_copy(checkout, workspace)
        data_dir = prepare_data(scratch / "data", workspace, request.num_stories, request.vocab_size,
                                request.data_seed)
        env = {"NANOCHAT_BASE_DIR": str(data_dir), "OMP_NUM_THREADS": str(request.threads)}
        if not compiled:
            env["TORCHDYNAMO_DISABLE"] = "1"
        spec = runner.RunSpec(workspace=str(workspace), argv=["-m", "scripts.base_train", *request.flags()], env=env,
                              quota_dirs=[str(data_dir)], label="selfcheck nanochat",
                              limits=runner.Limits(wall_s=request.wall_s, memory_mb=request.memory_mb))
        result = runner.execute(spec)
        return result, load_run_data(runner.run_dir(result.run_id))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


STEPS = 20


def device_checks(checkout, device):
    """(name, estimated seconds, run(seconds left) -> row fields) of the self-check's rows."""
    cuda = device == "cuda"
    return [(f"nanochat compile {state}", estimate,
             lambda left, compiled=compiled, state=state: nanochat_row(checkout, device, left,
                                                                       f"nanochat compile {state}", compiled, STEPS))
            for state, compiled, estimate in (("off", False, 120), ("on", True, 180 if cuda else 180))]


def nanochat_row(checkout, device, left, name, compiled, steps):
    request = NanochatRequest(steps=steps, device_type=device, wall_s=max(1.0, left),
                              memory_mb=16384 if device == "cuda" else 8192)
    result, data = nanochat_run(checkout, request, compiled)
    seen = len(data.steps)
    shown = f"{result.state}; the probe's hooks saw {seen} of {steps} steps"
    # compiled code may run past the probe's module hooks: the row reports how many steps they saw,
    # and fails only where the eager run (what bugdrill trains nanochat with) lost any
    passed = result.state == "finished" and (compiled or seen == steps)
    expected = "finishes" + ("" if compiled else f", hooks see {steps} steps")
    ran = f"nanochat base_train, {steps} steps, torch.compile {'on' if compiled else 'off'}, {device}"
    return {"check": name, "ran": ran, "seconds": result.wall_s, "expected": expected, "shown": shown,
            "verdict": "pass" if passed else "fail"}
