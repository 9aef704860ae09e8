"""Helpers for behavioural checks. A check runs with the workspace as its working directory
and first on sys.path, so `import picochat...` imports the candidate's code."""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def hooked(*handles):
    """Global hooks for the block's length: torch's register_* functions install a hook at once and
    return its handle; every handle is removed when the block ends, however it ends."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


from bug_catalog.teardown import ATTEMPTS, aborted_in_teardown


def run_ranks(command, on_retry=None, **kwargs):
    """subprocess.run(command, capture_output=True, text=True, **kwargs), run again (at most
    ATTEMPTS times) when a rank aborted in gloo's teardown on the CPU (bug_catalog/teardown.py says
    when). on_retry() clears what a run left."""
    for attempt in range(1, ATTEMPTS + 1):
        result = subprocess.run(command, capture_output=True, text=True, **kwargs)
        if result.returncode == 0 or not aborted_in_teardown(result.stderr) or attempt == ATTEMPTS:
            return result
        if on_retry:
            on_retry()


def run_script(module, *flags, timeout=120):
    """Run one of the workspace's scripts (e.g. "scripts.base_train", or torch.distributed.run
    with one) and return its stdout. Fails the check with the traceback's tail if it crashes."""
    result = run_ranks([sys.executable, "-m", module, *flags], cwd=Path.cwd(),
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=timeout)
    assert result.returncode == 0, f"{module} exited with {result.returncode}: {result.stderr[-800:]}"
    return result.stdout


def tiny_config(**overrides):
    from picochat.gpt import GPTConfig

    values = dict(vocab_size=64, sequence_len=32, n_layer=2, n_head=4, n_embd=32, dropout=0.0, pad_id=1)
    values.update(overrides)
    return GPTConfig(**values)


def tiny_model(seed=0, **overrides):
    from picochat.gpt import GPT

    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides))


def train_in_process(*flags):
    """Run scripts.base_train's main() in this process (so global torch hooks see it), with
    a tiny, quiet configuration that flags can override."""
    import runpy

    argv = ["base_train", "--preset=tiny", "--num_samples=0", "--eval_every=1000", "--dtype=float32", *flags]
    saved, sys.argv = sys.argv, argv
    try:
        runpy.run_module("scripts.base_train", run_name="__main__")
    finally:
        sys.argv = saved


def assert_same_gradient(accumulated, whole):
    """Gradients of one step over micro-batches and over the whole batch at once agree."""
    ratio = (accumulated.norm() / whole.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(accumulated, whole, dim=0).item()
    assert abs(ratio - 1) < 0.01 and cosine > 0.999, (
        f"accumulated gradient vs one-batch gradient: norm ratio {ratio:.3f}, cosine {cosine:.4f}")


def assert_qk_scale_invariant(attn, forward, label=""):
    """With queries and keys RMS-normalised, scaling W_q by 7 and W_k by 0.2 changes nothing:
    `forward()` runs the attention module `attn`."""
    with torch.no_grad():
        before = forward()
        attn.c_q.weight.mul_(7.0)
        attn.c_k.weight.mul_(0.2)
        after = forward()
    diff = (after - before).abs().max().item()
    assert diff < 1e-4, f"{label}scaling W_q by 7 and W_k by 0.2 changes the attention output by {diff:.3g}"
