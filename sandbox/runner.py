"""Runs of a workspace's training command under limits, kept by id in the state directory.

`start_run` writes `state_dir()/runs/<run_id>/` (spec.json, launch.json, empty stdout.log,
stderr.log and telemetry/) and spawns a detached supervisor (`sandbox/supervise.py`) that
runs the command and writes status.json while it runs and result.json when it ends. The
supervisor outlives its caller, so an MCP server may be killed and restarted mid-run and
pick the run up again by id.

* A run that hangs, leaks memory, forks, floods stdout or crashes is a result, never an
  exception for the caller: states `timed_out`, `memory_limit`, `output_limit`,
  `disk_limit`, `failed` (exit status or signal), `stopped`.
* A supervisor that disappears without a result (killed, machine rebooted) leaves a run
  that `run_result` marks `interrupted`, once, after killing what it left behind.
* The command sees a scrubbed environment: no PYTHONPATH or BUGDRILL_* from the caller
  (the state directory must stay unknown to the code under test), bytecode writing off
  (a workspace must not grow __pycache__) and unbuffered output (logs can be followed).

Linux gets everything; elsewhere the supervisor has no /proc to walk and no parent-death
signal, so only the process group is killed and memory is not polled.
"""

import contextlib
import contextvars
import fcntl
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from sandbox import jail
from sandbox.state import state_dir
from sandbox.supervise import write_json_atomic

PACKAGE_DIR = Path(__file__).resolve().parent
PROBE_DIR = PACKAGE_DIR / "probe"
KILL_GRACE_S = 3.0  # between SIGTERM and SIGKILL on a wall-time limit or a stop
_RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_KEPT_ENV = {"PATH", "HOME", "LANG", "TMPDIR", "USER", "OMP_NUM_THREADS"}
# set only around a pristine run whose executed lines are wanted (bug_synth/reach.py): a context
# variable, so a run started by any other thread or caller never pays for the tracer
_TRACE_LINES = contextvars.ContextVar("trace_lines", default=False)


@contextlib.contextmanager
def tracing_lines():
    """Runs started inside record the checkout lines each process executes (probe/bugdrill_lines.py)."""
    token = _TRACE_LINES.set(True)
    try:
        yield
    finally:
        _TRACE_LINES.reset(token)

RunState = Literal[
    "running", "finished", "failed", "timed_out", "memory_limit", "disk_limit", "output_limit", "stopped",
    "interrupted",
]


class RunError(Exception):
    """Bad input for a run operation (unknown id, missing workspace): one line for the user."""


class Limits(BaseModel):
    wall_s: float = Field(600, gt=0)
    memory_mb: int = Field(4096, gt=0)
    disk_mb: int = Field(2048, gt=0)
    output_mb: int = Field(20, gt=0)
    processes: int = Field(512, gt=0, description="tasks (threads count) of the jail's user, jailed runs only")


class RunSpec(BaseModel):
    workspace: str
    argv: list[str]
    nproc: int = Field(1, ge=1)
    env: dict[str, str] = {}
    limits: Limits = Limits()
    probe: bool = True
    quota_dirs: list[str] = []
    label: str = ""
    untrusted: bool = False  # workspace code: run in the jail (sandbox/jail.py) wherever the machine allows
    log_format: str = ""  # the codebase whose lines these are (sandbox/codebases); "" reads `key: value | ...`


class RunResult(BaseModel):
    run_id: str
    state: RunState
    exit_code: int | None
    signal: str | None
    wall_s: float
    peak_memory_mb: float
    message: str


# --- starting ---------------------------------------------------------------------------

def new_run_id():
    """UTC time to the second, then random hex: short, unique, sorts by time."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def start_run(spec: RunSpec, run_id: str | None = None) -> str:
    """Start the run in a detached supervisor and return its id at once."""
    run_id = _check_id(run_id or new_run_id())
    workspace = Path(spec.workspace).expanduser().resolve()
    if not workspace.is_dir():
        raise RunError(f"workspace {spec.workspace!r} is not a directory")
    path = _runs_dir() / run_id
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise RunError(f"a run with id {run_id!r} already exists") from None
    # the lock is taken before spec.json makes the run visible, so nobody can see the run
    # without a live holder and mark it interrupted
    lock_fd = os.open(path / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        (path / "telemetry").mkdir()
        for name in ("stdout.log", "stderr.log"):
            (path / name).touch()
        write_json_atomic(path / "launch.json", _launch(spec, run_id, workspace, path))
        (path / "spec.json").write_text(spec.model_dump_json(indent=2))
        _spawn_supervisor(path, lock_fd)
    finally:
        os.close(lock_fd)
    return run_id


def _launch(spec, run_id, workspace, path):
    """Everything the supervisor needs, resolved here, where the caller's environment is."""
    if spec.nproc > 1:
        # workers get their own sessions from torchrun; the supervisor finds them by pid
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={spec.nproc}"]
    else:
        argv = [sys.executable]
    argv, env = argv + list(spec.argv), _run_env(spec, path)
    quota_dirs = [str(Path(d).expanduser().resolve()) for d in spec.quota_dirs]
    isolation = jail.mode() if spec.untrusted else "trusted"
    if jail.isolating(isolation):
        # everything the run writes is in the quota; the workspace is read-only inside, counted anyway
        quota_dirs.append(str(workspace))
        argv, env = jail.jailed_argv(jail_plan(spec, workspace, path), argv, env)
    return {
        "run_id": run_id,
        "created": time.time(),
        "argv": argv,
        "cwd": str(workspace),
        "env": env,
        "isolation": isolation,
        "limits": spec.limits.model_dump(),
        "quota_dirs": quota_dirs,
        "kill_grace_s": KILL_GRACE_S,
        # torchrun, unlike a plain script, stops its workers on SIGTERM; SIGKILL would orphan them
        "pdeathsig": "SIGTERM" if spec.nproc > 1 else "SIGKILL",
        "cgroup_parent": os.environ.get("BUGDRILL_CGROUP_PARENT"),
    }


def jail_plan(spec, workspace, path):
    """What a jailed run sees: the workspace, its telemetry directory and quota directories (in
    that order, at /episode/rw/0, 1, ...), the probe. Views read it to name those places again."""
    return jail.Plan(str(workspace), writable=[str(Path(path) / "telemetry"), *spec.quota_dirs],
                     readable=[str(PROBE_DIR)] if spec.probe else [], processes=spec.limits.processes)


def _run_env(spec, path):
    for key in spec.env:
        if key.startswith("BUGDRILL_") and (not key.startswith("BUGDRILL_PROBE_") or key == "BUGDRILL_PROBE_DIR"):
            raise RunError(f"{key} may not be set in a run's environment")
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV or k.startswith("LC_")}
    env.update(spec.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if spec.probe:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE_DIR), spec.env.get("PYTHONPATH")]))
        env["BUGDRILL_PROBE_DIR"] = str(path / "telemetry")
        if _TRACE_LINES.get():
            env["BUGDRILL_PROBE_LINES"] = "1"
    return env


def _spawn_supervisor(path, lock_fd):
    """The supervisor gets a session of its own and none of our stdio (a stdio MCP
    server's stdout belongs to the protocol). It forks and its first process exits at
    once; we wait for that one only."""
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
    env.update(PYTHONPATH=str(PACKAGE_DIR.parent), PYTHONDONTWRITEBYTECODE="1")
    with open(path / "supervisor.log", "ab") as log:
        try:
            # -P: the run directory (its cwd) is not put on sys.path
            first = subprocess.Popen(
                [sys.executable, "-P", "-m", "sandbox.supervise", str(path), "--lock-fd", str(lock_fd)],
                cwd=path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, pass_fds=(lock_fd,),
            )
        except OSError as error:
            raise RunError(f"could not start the supervisor: {error}") from None
    if first.wait() != 0:
        raise RunError(f"the supervisor did not start (status {first.returncode}); see {path / 'supervisor.log'}")


# --- reading ----------------------------------------------------------------------------

def _runs_dir():
    return state_dir() / "runs"


def _check_id(run_id):
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise RunError(f"malformed run id {run_id!r}: expected lowercase letters, digits and '-'")
    return run_id


def run_dir(run_id: str) -> Path:
    path = _runs_dir() / _check_id(run_id)
    if not (path / "spec.json").is_file():
        raise RunError(f"no run with id {run_id!r}")
    return path


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_result(path):
    data = _read_json(path / "result.json")
    try:
        return RunResult.model_validate(data) if data is not None else None
    except ValidationError:
        return None


def run_result(run_id: str) -> RunResult:
    """The run as it stands: its result, else `running` while its supervisor lives, else
    `interrupted` (written down, so the answer does not change)."""
    path = run_dir(run_id)
    result = _read_result(path)
    if result is not None:
        return result
    lock_fd = _take_lock(path)
    if lock_fd is None:
        return _running(run_id, path)
    try:
        # the supervisor writes its result, then lets go of the lock: look again
        return _read_result(path) or _mark_interrupted(run_id, path)
    finally:
        os.close(lock_fd)


def _take_lock(path):
    """The lock fd when the supervisor no longer holds it, else None."""
    try:
        fd = os.open(path / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _running(run_id, path):
    status = _read_json(path / "status.json") or {}
    started = status.get("started")
    wall_s = max(0.0, time.time() - started) if started else 0.0
    return RunResult(
        run_id=run_id, state="running", exit_code=None, signal=None, wall_s=round(wall_s, 3),
        peak_memory_mb=status.get("peak_memory_mb", 0.0),
        message=f"running for {wall_s:.1f} s" if started else "starting",
    )


def _mark_interrupted(run_id, path):
    """The supervisor is gone without a result: kill what it may have left (the command
    itself got its parent-death signal; its descendants did not) and write the result."""
    status = _read_json(path / "status.json") or {}
    for pid, start in status.get("pids", []):
        if _start_ticks(pid) == start:  # the same process, not a new one with its pid
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    started, updated = status.get("started"), status.get("updated")
    result = RunResult(
        run_id=run_id, state="interrupted", exit_code=None, signal=None,
        wall_s=round(updated - started, 3) if started and updated else 0.0,
        peak_memory_mb=status.get("peak_memory_mb", 0.0),
        message="the supervisor ended before the run did; the run was killed",
    )
    write_json_atomic(path / "result.json", result.model_dump())
    return result


def _start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def wait_run(
    run_id: str,
    timeout: float | None = None,
    on_poll: Callable[[RunResult], None] | None = None,
    poll_s: float = 0.25,
) -> RunResult:
    """Poll until the run ends or `timeout` passes (then the `running` result comes back);
    on_poll sees every result polled, the last one included."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        result = run_result(run_id)
        if on_poll is not None:
            on_poll(result)
        if result.state != "running":
            return result
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return result
        time.sleep(poll_s if left is None else min(poll_s, left))


def stop_run(run_id: str) -> RunResult:
    """Ask the supervisor to stop the run (SIGTERM, SIGKILL after a grace period) and wait
    for it; an ended run is returned as it is."""
    result = run_result(run_id)
    if result.state != "running":
        return result
    (run_dir(run_id) / "stop").touch()
    return wait_run(run_id, timeout=KILL_GRACE_S + 10)


def read_log(run_id: str, stream: Literal["stdout", "stderr"], tail_lines: int | None = None) -> str:
    """The run's stdout or stderr so far (undecodable bytes replaced), or its last lines."""
    if stream not in ("stdout", "stderr"):
        raise RunError(f"no log stream {stream!r}: expected 'stdout' or 'stderr'")
    path = run_dir(run_id) / f"{stream}.log"
    if tail_lines is None:
        return path.read_bytes().decode(errors="replace")
    return _tail(path, tail_lines)


def _tail(path, lines):
    """The last lines of a file, read from its end: a log may be tens of MB."""
    if lines <= 0:
        return ""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        data = b""
        # one newline more than asked for: the first line read may be cut
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return b"".join(data.splitlines(keepends=True)[-lines:]).decode(errors="replace")


def list_runs() -> list[RunResult]:
    """Every run in the state directory, oldest first."""
    runs = []
    root = _runs_dir()
    for path in root.iterdir() if root.is_dir() else []:
        if _RUN_ID.fullmatch(path.name) and (path / "spec.json").is_file():
            created = (_read_json(path / "launch.json") or {}).get("created", 0.0)
            runs.append((created, path.name))
    return [run_result(run_id) for _, run_id in sorted(runs)]


def execute(spec: RunSpec, on_poll: Callable[[RunResult], None] | None = None) -> RunResult:
    """Start a run and wait for its end."""
    return wait_run(start_run(spec), on_poll=on_poll)
