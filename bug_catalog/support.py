"""Helpers for behavioural checks. A check runs with the workspace as its working directory
and first on sys.path, so `import picochat...` imports the candidate's code."""

import os
import subprocess
import sys
from pathlib import Path

import torch


def run_script(module, *flags, timeout=120):
    """Run one of the workspace's scripts (e.g. "scripts.base_train") and return its stdout.
    Fails the check with the traceback's tail if the script crashes."""
    result = subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=Path.cwd(),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
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
