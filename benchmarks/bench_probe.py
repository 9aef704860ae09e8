"""What the telemetry probe costs a training step: picochat with and without it, interleaved.

    python benchmarks/bench_probe.py [--reps 3] [--tiny-steps 100] [--small-steps 30] [--presets tiny small]

For each preset (tiny, then small with fewer steps) the runs go round-robin — no probe, probe
at its default settings, probe with a detailed sample at every step — `--reps` times, in one
fresh copy of the codebase whose corpus is built by an untimed first run. One torch thread,
as the runner's runs use. Two measures, each taken the same way with and without the probe:

* step time, the script's own: picochat prints `tok/sec` = tokens per step / dt rounded to an
  integer, so tokens per step / tok/sec gives dt to better than 0.01 % (its `dt: NNms` field is
  rounded to whole milliseconds, too coarse for a few per cent). Step 1 of every run is left
  out (warm-up); median and mean over all other steps of all runs of a setting. The median is
  a typical step; the mean also carries the sampled steps' extra cost. Both are wall-clock
  figures, so other work on the machine inflates them.
* CPU time per step of the training process: (CPU time of an N-step run - CPU time of a 1-step
  run) / (N - 1), start-up and the evaluations cancelling out; median over the repetitions. Far
  less disturbed by other processes competing for the cores.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sandbox.codebase import PICOCHAT_DIR, copy_codebase  # noqa: E402

PROBE_DIR = ROOT / "sandbox" / "probe"
STEP_LINE = re.compile(r"^step (\d+)/\d+ .*\| tok/sec: ([\d,]+)", re.M)
TOKENS_PER_STEP = re.compile(r"^tokens per step: ([\d,]+)", re.M)
SETTINGS = {  # name -> probe environment (None: no probe)
    "no probe": None,
    "probe, defaults": {},
    "probe, detail every step": {"BUGDRILL_PROBE_EVERY": "1"},
}


def train(workdir, preset, steps, probe_env, probe_out):
    """Run the script; returns its stdout and the CPU seconds the run used."""
    env = {**os.environ, "PICOCHAT_BASE_DIR": str(workdir / ".picochat"), "OMP_NUM_THREADS": "1"}
    env.pop("BUGDRILL_PROBE_DIR", None)
    if probe_env is not None:
        env.update(probe_env, PYTHONPATH=str(PROBE_DIR), BUGDRILL_PROBE_DIR=str(probe_out))
    command = [sys.executable, "-m", "scripts.base_train", f"--preset={preset}", f"--num_iterations={steps}",
               f"--eval_every={steps}", "--eval_batches=1", "--num_samples=0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result.stdout, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def step_times_ms(output):
    """dt of every step after the first, recovered from tok/sec."""
    tokens = int(TOKENS_PER_STEP.search(output).group(1).replace(",", ""))
    return [1000 * tokens / int(rate.replace(",", "")) for step, rate in STEP_LINE.findall(output) if step != "1"]


def bench(workdir, preset, steps, reps, scratch):
    train(workdir, preset, 2, None, None)  # builds the corpus outside the timing
    times = {name: [] for name in SETTINGS}
    cpu_per_step = {name: [] for name in SETTINGS}
    for rep in range(reps):
        for i, (name, probe_env) in enumerate(SETTINGS.items()):
            out, cpu = train(workdir, preset, steps, probe_env, scratch / f"probe-{preset}-{rep}-{i}")
            _, cpu_one_step = train(workdir, preset, 1, probe_env, scratch / f"probe-{preset}-{rep}-{i}-1")
            times[name] += step_times_ms(out)
            cpu_per_step[name].append(1000 * (cpu - cpu_one_step) / (steps - 1))
    print(f"{preset}: {steps} steps x {reps} runs per setting")
    base = {"median": statistics.median(times["no probe"]), "mean": statistics.fmean(times["no probe"]),
            "cpu": statistics.median(cpu_per_step["no probe"])}
    for name in SETTINGS:
        median, mean = statistics.median(times[name]), statistics.fmean(times[name])
        cpu = statistics.median(cpu_per_step[name])
        print(f"  {name:26s} step median {median:6.2f} ms ({median / base['median']:.3f}) | "
              f"mean {mean:6.2f} ms ({mean / base['mean']:.3f}) | "
              f"CPU per step {cpu:6.2f} ms ({cpu / base['cpu']:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tiny-steps", type=int, default=100)
    parser.add_argument("--small-steps", type=int, default=30)
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
