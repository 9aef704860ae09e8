"""`bugdrill bench`: the figures the project is held to, measured now, printed.

* the server's start: seconds from starting `bugdrill serve` (stdio) to its answer to tools/list,
  the wait a client has before it can call anything (median of a few starts, each role);
* probe overhead: picochat `tiny` with and without the telemetry probe, interleaved in one
  process pool (the runner), compared as a ratio of median step times (the script's own `dt:`
  field, the same measure both ways);
* baseline step time of the `tiny` and `small` presets;
* time from injection to a classified symptom, per bug (median and worst), baselines warm;
* with --matrix, the time of the whole validation matrix.

Nothing is asserted: this machine is shared and noisy, so figures are printed, not tested.
"""

import os
import statistics
import sys
import tempfile
import time

from sandbox import runner
from sandbox.codebase import copy_codebase
from sandbox.codebases import builtin
from sandbox.logparse import parse_log

FAST_BUGS = (1, 13, 20, 42, 48, 54)


def median_step_ms(run_id):
    log = parse_log(runner.read_log(run_id, "stdout"))
    times = [r["dt"] * 1000 for r in log.train[2:] if isinstance(r.get("dt"), float)]  # first steps warm up
    return statistics.median(times) if times else float("nan")


def timed_run(workspace, data_dir, flags, probe):
    spec = runner.RunSpec(workspace=str(workspace), argv=["-m", "scripts.base_train", *flags], probe=probe,
                          env={builtin().data_env: str(data_dir), "OMP_NUM_THREADS": "1"}, label="bench")
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


def serve_to_tools_list_s(role, state_dir):
    """Seconds from starting `bugdrill serve --role ROLE` over stdio to its answer to tools/list
    (the client's initialize handshake included)."""
    import anyio
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", "--role", role],
                                   env={**os.environ, "BUGDRILL_STATE_DIR": str(state_dir)})

    async def timed():
        started = time.perf_counter()
        async with Client(server) as client:
            await client.list_tools()
            return time.perf_counter() - started
    return anyio.run(timed)


def server_start(out, starts=3, state_dir=None):
    state_dir = state_dir or tempfile.mkdtemp(prefix="bugdrill-bench-state-")
    for role in ("interviewer", "candidate"):
        seconds = [serve_to_tools_list_s(role, state_dir) for _ in range(starts)]
        out(f"server start ({role}): {statistics.median(seconds):.2f} s from process start to the tools/list "
            f"answer over stdio (median of {starts}; fastest {min(seconds):.2f} s)")


def run_bench(bugs=FAST_BUGS, pairs=3, matrix=False, out=print):
    server_start(out)
    scratch = tempfile.mkdtemp(prefix="bugdrill-bench-")
    workspace = f"{scratch}/{builtin().source.name}"
    copy_codebase(builtin().source, workspace)
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
