"""Train picochat's tiny preset for 100 steps, twice, in a fresh copy, and print figures.

    python benchmarks/bench_tiny.py [--steps 100] [--preset tiny]

Prints wall time of each run (start-up and corpus building included: the first run builds
the corpus, the second finds it cached), validation bits per byte at the first and last
step, the entropy floor, how far of the way from start to floor the run got, and whether
the two same-seed runs printed the same loss curve.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sandbox.codebase import copy_codebase  # noqa: E402
from sandbox.codebases.picochat import PICOCHAT_DIR  # noqa: E402

VAL_LINE = re.compile(r"step (\d+) \| val loss: ([\d.]+) \| val bpb: ([\d.]+) \| entropy floor bpb: ([\d.]+)")
STEP_LINE = re.compile(r"step \d+/\d+ .*?\| loss: ([\d.]+)")


def train(workdir, preset, steps):
    env = {**os.environ, "PICOCHAT_BASE_DIR": str(workdir / ".picochat")}
    command = [sys.executable, "-m", "scripts.base_train", f"--preset={preset}", f"--num_iterations={steps}"]
    start = time.time()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=True)
    return time.time() - start, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    workdir = copy_codebase(PICOCHAT_DIR, Path(tempfile.mkdtemp(prefix="bench-")) / "picochat")

    runs = [train(workdir, args.preset, args.steps) for _ in range(2)]
    (wall_cold, out), (wall_warm, out_again) = runs
    vals = [m.groups() for m in VAL_LINE.finditer(out)]
    first_bpb, last_bpb, floor = float(vals[0][2]), float(vals[-1][2]), float(vals[0][3])
    losses = STEP_LINE.findall(out)
    print(f"preset {args.preset}, {args.steps} steps, torch threads {os.cpu_count()} cores")
    print(f"wall time, corpus built: {wall_cold:.1f} s")
    print(f"wall time, corpus cached: {wall_warm:.1f} s")
    print(f"val bpb at step 0: {first_bpb:.4f} | at step {args.steps}: {last_bpb:.4f} | floor: {floor:.4f}")
    print(f"fraction of the way from start to floor: {(first_bpb - last_bpb) / (first_bpb - floor):.2f}")
    print(f"lowest val bpb: {min(float(v[2]) for v in vals):.4f} (never below the floor: "
          f"{all(float(v[2]) > floor for v in vals)})")
    print(f"train loss: first {losses[0]} | last {losses[-1]}")
    print(f"same seed, same loss curve: {STEP_LINE.findall(out_again) == losses}")


if __name__ == "__main__":
    main()
