"""What the telemetry probe costs a training step: picochat with and without it, interleaved.

    python benchmarks/bench_probe.py [--reps 5] [--tiny-steps 60] [--small-steps 20] [--presets tiny small]

For each preset (tiny, then small with fewer steps) the runs go round-robin — no probe, probe
at its default settings, probe with a detailed sample at every step — `--reps` times, in one
fresh copy of the codebase whose corpus is built by an untimed first run, with one torch
thread as the runner's runs use. The step time is the script's own, measured the same way
with and without the probe: picochat prints `tok/sec` = tokens per step / dt rounded to an
integer, so tokens per step / tok/sec gives dt to better than 0.01 % (its `dt: NNms` field is
rounded to whole milliseconds, too coarse for a few per cent). Step 1 of every run is left out
(warm-up). Printed per setting:

* median and mean step time over all steps of all its runs, and their ratios to no probe. The
  median is a typical (unsampled) step; the mean also carries the sampled steps' extra cost,
  and in a short run the first FIRST steps are all sampled, so it overstates a long run's.
* paired: the median over repetitions of (this run's median step / the median step of the
  no-probe run just before it) — less disturbed by other work drifting on a shared machine.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sandbox.codebase import copy_codebase  # noqa: E402
from sandbox.codebases.picochat import PICOCHAT_DIR  # noqa: E402

PROBE_DIR = ROOT / "sandbox" / "probe"
STEP_LINE = re.compile(r"^step (\d+)/\d+ .*\| tok/sec: ([\d,]+)", re.M)
TOKENS_PER_STEP = re.compile(r"^tokens per step: ([\d,]+)", re.M)
SETTINGS = {  # name -> probe environment (None: no probe)
    "no probe": None,
    "probe, defaults": {},
    "probe, detail every step": {"BUGDRILL_PROBE_EVERY": "1"},
}


def train(workdir, preset, steps, probe_env, probe_out):
    env = {**os.environ, "PICOCHAT_BASE_DIR": str(workdir / ".picochat"), "OMP_NUM_THREADS": "1"}
    env.pop("BUGDRILL_PROBE_DIR", None)
    if probe_env is not None:
        env.update(probe_env, PYTHONPATH=str(PROBE_DIR), BUGDRILL_PROBE_DIR=str(probe_out))
    command = [sys.executable, "-m", "scripts.base_train", f"--preset={preset}", f"--num_iterations={steps}",
               f"--eval_every={steps}", "--eval_batches=1", "--num_samples=0"]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout


def step_times_ms(output):
    """dt of every step after the first, recovered from tok/sec."""
    tokens = int(TOKENS_PER_STEP.search(output).group(1).replace(",", ""))
    return [1000 * tokens / int(rate.replace(",", "")) for step, rate in STEP_LINE.findall(output) if step != "1"]


def bench(workdir, preset, steps, reps, scratch):
    train(workdir, preset, 2, None, None)  # builds the corpus outside the timing
    runs = {name: [] for name in SETTINGS}  # name -> step times of each run
    for rep in range(reps):
        for i, (name, probe_env) in enumerate(SETTINGS.items()):
            runs[name].append(step_times_ms(train(workdir, preset, steps, probe_env, scratch / f"{preset}-{rep}-{i}")))
    sampled = sum(1 for s in range(2, steps + 1) if s <= 5 or s % 10 == 0)
    print(f"{preset}: {steps} steps x {reps} runs per setting; at the defaults {sampled} of the "
          f"{steps - 1} measured steps are sampled (1 in 10 in a long run)")
    base = [statistics.median(times) for times in runs["no probe"]]
    base_all = sum(runs["no probe"], [])
    for name, times in runs.items():
        every = sum(times, [])
        median, mean = statistics.median(every), statistics.fmean(every)
        paired = statistics.median(statistics.median(t) / b for t, b in zip(times, base))
        print(f"  {name:26s} median {median:6.2f} ms ({median / statistics.median(base_all):.3f}) | "
              f"mean {mean:6.2f} ms ({mean / statistics.fmean(base_all):.3f}) | paired {paired:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tiny-steps", type=int, default=60)
    parser.add_argument("--small-steps", type=int, default=20)
    parser.add_argument("--presets", nargs="+", choices=["tiny", "small"], default=["tiny", "small"])
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    scratch = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    workdir = copy_codebase(PICOCHAT_DIR, scratch / "picochat")
    for preset in args.presets:
        bench(workdir, preset, args.tiny_steps if preset == "tiny" else args.small_steps, args.reps, scratch)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
