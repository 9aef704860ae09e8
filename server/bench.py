"""`bugdrill bench`: the figures the project is held to, measured now, printed.

* probe overhead: picochat `tiny` with and without the telemetry probe, interleaved in one
  process pool (the runner), compared as a ratio of median step times (the script's own `dt:`
  field, the same measure both ways);
* baseline step time of the `tiny` and `small` presets;
* time from injection to a classified symptom, per bug (median and worst), baselines warm;
* with --matrix, the time of the whole validation matrix.

Nothing is asserted: this machine is shared and noisy, so figures are printed, not tested.
"""

import statistics
import tempfile
import time

from sandbox import runner
from sandbox.codebase import PICOCHAT_DIR, copy_codebase
from sandbox.logparse import parse_log

FAST_BUGS = (1, 13, 20, 42, 48, 54)


def median_step_ms(run_id):
    log = parse_log(runner.read_log(run_id, "stdout"))
    times = [r["dt"] * 1000 for r in log.train[2:] if isinstance(r.get("dt"), float)]  # first steps warm up
    return statistics.median(times) if times else float("nan")


def timed_run(workspace, data_dir, flags, probe):
    spec = runner.RunSpec(workspace=str(workspace), argv=["-m", "scripts.base_train", *flags], probe=probe,
                          env={"PICOCHAT_BASE_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}, label="bench")
    result = runner.execute(spec)
    if result.state != "finished":
        raise RuntimeError(f"bench run {result.run_id} ended: {result.message}")
    return median_step_ms(result.run_id)


def probe_overhead(workspace, data_dir, preset, steps, pairs):
    flags = [f"--preset={preset}", f"--num_iterations={steps}", "--num_samples=0", f"--eval_every={steps}"]
    timed_run(workspace, data_dir, flags, probe=False)  # builds the corpus outside the timing
    plain, probed = [], []
    for _ in range(pairs):
        plain.append(timed_run(workspace, data_dir, flags, probe=False))
        probed.append(timed_run(workspace, data_dir, flags, probe=True))
    return statistics.median(plain), statistics.median(probed)


def inject_to_symptom(bugs):
    from sandbox.matrix import validate

    rows = [r for r in validate(set(bugs), jobs=1) if r.verdict in ("shows", "missing")]
    return [(f"{r.bug} {r.variant}", r.seconds, r.verdict) for r in rows]


def run_bench(bugs=FAST_BUGS, pairs=3, matrix=False, out=print):
    scratch = tempfile.mkdtemp(prefix="bugdrill-bench-")
    workspace = f"{scratch}/picochat"
    copy_codebase(PICOCHAT_DIR, workspace)
    for preset, steps in (("tiny", 60), ("small", 20)):
        plain, probed = probe_overhead(workspace, f"{scratch}/data-{preset}", preset, steps, pairs)
        out(f"{preset:5s} step time: {plain:.1f} ms without the probe, {probed:.1f} ms with it "
            f"(ratio {probed / plain:.3f}, median of {pairs} interleaved pairs, one thread)")
    timings = inject_to_symptom(bugs)
    if timings:
        seconds = [s for _, s, _ in timings]
        worst = max(timings, key=lambda t: t[1])
        out(f"inject to classified symptom: median {statistics.median(seconds):.1f} s, worst {worst[1]:.1f} s "
            f"({worst[0]}), over {len(timings)} variants of bugs {', '.join(map(str, bugs))}")
        for name, s, verdict in timings:
            out(f"    {name:<40} {s:6.1f} s  {verdict}")
    if matrix:
        from sandbox.matrix import validate

        started = time.time()
        rows = validate(None, jobs=2)
        missing = sum(r.verdict == "missing" for r in rows)
        out(f"whole validation matrix: {time.time() - started:.0f} s, {len(rows)} rows, {missing} missing")
    return 0
