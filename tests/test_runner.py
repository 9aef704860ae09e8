"""The runner: a run that hangs, leaks, forks, floods or crashes ends as a result, leaves no
process behind, and can be followed and picked up again from another process.

Each test has its own state directory and a workspace of a few lines of Python; only the
two-rank test imports torch.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sandbox import runner
from sandbox.runner import Limits, RunError, RunSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the runner's limits need Linux /proc")


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(runner, "KILL_GRACE_S", 0.5)  # keeps SIGTERM-ignoring processes quick to test
    return tmp_path / "state"


@pytest.fixture
def workspace(tmp_path):
    path = tmp_path / "ws"
    path.mkdir()
    return path


def write(workspace, text, name="main.py"):
    (workspace / name).write_text(textwrap.dedent(text))
    return name


def spec(workspace, *argv, **limits):
    return RunSpec(workspace=str(workspace), argv=list(argv), limits=Limits(**limits))


def alive(pid):
    """A zombie counts as gone: it runs nothing and holds no memory."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
    return value


def status(run_id):
    try:
        return json.loads((runner.run_dir(run_id) / "status.json").read_text())
    except (OSError, ValueError):
        return None


# --- ordinary ends ----------------------------------------------------------------------

def test_a_normal_script_finishes_with_its_output_and_files(workspace):
    name = write(workspace, "print('hello')\n")
    result = runner.execute(spec(workspace, name).model_copy(update={"label": "smoke"}))
    assert (result.state, result.exit_code, result.signal) == ("finished", 0, None)
    assert result.message == "exited with status 0"
    assert runner.read_log(result.run_id, "stdout") == "hello\n"
    path = runner.run_dir(result.run_id)
    for name in ("spec.json", "status.json", "stdout.log", "stderr.log", "result.json"):
        assert (path / name).is_file(), name
    assert (path / "telemetry").is_dir()
    assert json.loads((path / "spec.json").read_text())["label"] == "smoke"
    second = runner.execute(spec(workspace, "main.py"))
    assert [r.run_id for r in runner.list_runs()] == [result.run_id, second.run_id]


def test_a_crash_fails_with_status_1_and_the_traceback_in_stderr(workspace):
    name = write(workspace, "print('before')\nraise RuntimeError('boom')\n")
    result = runner.execute(spec(workspace, name))
    assert (result.state, result.exit_code, result.signal) == ("failed", 1, None)
    assert result.message == "exited with status 1"
    assert runner.read_log(result.run_id, "stderr", tail_lines=1) == "RuntimeError: boom\n"
    assert runner.read_log(result.run_id, "stderr").startswith("Traceback (most recent call last):")


def test_a_segfault_reports_the_signal_and_drops_no_core_file(workspace):
    name = write(workspace, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    result = runner.execute(spec(workspace, name))
    assert (result.state, result.exit_code, result.signal) == ("failed", None, "SIGSEGV")
    assert result.message == "killed by SIGSEGV"
    assert sorted(p.name for p in workspace.iterdir()) == ["main.py"]


# --- limits -----------------------------------------------------------------------------

def test_an_endless_loop_ends_at_the_wall_time_limit(workspace):
    name = write(workspace, "while True:\n    pass\n")
    result = runner.execute(spec(workspace, name, wall_s=1.0))
    assert result.state == "timed_out"
    assert result.message == "killed after 1.0 s wall-time limit"
    assert result.signal == "SIGTERM" and 1.0 <= result.wall_s < 3.0


def test_unbounded_allocation_ends_at_the_memory_limit(workspace):
    name = write(workspace, """
        import time
        chunks = []
        while True:
            chunks.append(b"x" * (8 << 20))  # touched, so it is resident
            time.sleep(0.01)
    """)
    result = runner.execute(spec(workspace, name, memory_mb=150, wall_s=30))
    assert result.state == "memory_limit", result
    assert result.signal == "SIGKILL"
    assert 150 <= result.peak_memory_mb < 1000
    assert "150 MB memory limit" in result.message


def test_flooding_stdout_ends_at_the_output_limit(workspace):
    name = write(workspace, "while True:\n    print('x' * 1000)\n")
    result = runner.execute(spec(workspace, name, output_mb=1, wall_s=30))
    assert result.state == "output_limit", result
    assert "1 MB output limit" in result.message


@pytest.mark.parametrize("where", ["run directory", "quota directory"])
def test_a_runaway_writer_ends_at_the_disk_limit(workspace, tmp_path, where):
    quota = tmp_path / "data"
    quota.mkdir()
    name = write(workspace, """
        import os, sys, time
        target = sys.argv[1] if len(sys.argv) > 1 else os.environ["BUGDRILL_PROBE_DIR"]
        with open(os.path.join(target, "checkpoint.bin"), "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
                f.flush()
                time.sleep(0.01)
    """)
    argv = [name, str(quota)] if where == "quota directory" else [name]
    run = spec(workspace, *argv, disk_mb=20, wall_s=30).model_copy(update={"quota_dirs": [str(quota)]})
    result = runner.execute(run)
    assert result.state == "disk_limit", result
    assert "20 MB disk limit" in result.message


FORKER = """
    import os, signal, sys, time
    ready_r, ready_w = os.pipe()

    def child(setup):
        if os.fork() == 0:
            setup()
            os.write(ready_w, f"{os.getpid()}\\n".encode())
            while True:
                time.sleep(1)

    def escape():  # a session of its own: out of the run's process group
        os.setsid()

    def double_escape():  # new session, then an orphan whose parent is gone
        os.setsid()
        if os.fork() != 0:
            os._exit(0)

    def stubborn():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    for setup in (lambda: None, escape, double_escape, stubborn):
        child(setup)
    ready = os.fdopen(ready_r)
    print(os.getpid(), *(int(ready.readline()) for _ in range(4)), flush=True)
    if "--exit" in sys.argv:
        sys.exit(0)
    while True:
        time.sleep(1)
"""


@pytest.mark.parametrize("ending", ["timed_out", "finished"])
def test_a_forking_script_leaves_no_process_behind(workspace, ending):
    name = write(workspace, FORKER)
    argv = [name, "--exit"] if ending == "finished" else [name]
    result = runner.execute(spec(workspace, *argv, wall_s=2.0))
    assert result.state == ending, result
    pids = [int(p) for p in runner.read_log(result.run_id, "stdout").split()]
    assert len(pids) == 5
    assert [pid for pid in pids if alive(pid)] == []


# --- following, stopping, surviving the caller ------------------------------------------

def test_a_run_can_be_followed_while_it_runs(workspace):
    name = write(workspace, """
        import os, time
        print("first")
        while not os.path.exists("go"):
            time.sleep(0.05)
        print("second")
    """)
    run_id = runner.start_run(spec(workspace, name, wall_s=30))
    wait_for(lambda: runner.read_log(run_id, "stdout") == "first\n")
    assert runner.run_result(run_id).state == "running"
    (workspace / "go").touch()
    polled = []
    result = runner.wait_run(run_id, timeout=20, on_poll=polled.append, poll_s=0.05)
    assert result.state == "finished" and polled[-1] == result
    assert runner.read_log(run_id, "stdout") == "first\nsecond\n"


def test_stop_run_stops_a_running_run_and_leaves_an_ended_one_alone(workspace):
    name = write(workspace, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    run_id = runner.start_run(spec(workspace, name, wall_s=60))
    wait_for(lambda: runner.read_log(run_id, "stdout"))
    result = runner.stop_run(run_id)
    assert result.state == "stopped" and result.message == "stopped on request"
    assert runner.stop_run(run_id) == result


def test_the_run_outlives_its_caller(workspace):
    """A server that starts a run and dies: another process later sees the run finish."""
    name = write(workspace, "import time\ntime.sleep(2)\nprint('done')\n")
    starter = (
        "import os, sys\nfrom sandbox.runner import RunSpec, start_run\n"
        "print(start_run(RunSpec(workspace=sys.argv[1], argv=[sys.argv[2]])), flush=True)\nos._exit(0)\n"
    )
    # capture_output would wait for the run's end if the supervisor held the starter's pipes
    started = subprocess.run([sys.executable, "-c", starter, str(workspace), name],
                             capture_output=True, text=True, timeout=30, check=True)
    run_id = started.stdout.strip()
    assert runner.run_result(run_id).state == "running"
    watcher = "import sys\nfrom sandbox.runner import wait_run\nprint(wait_run(sys.argv[1]).model_dump_json())\n"
    watched = subprocess.run([sys.executable, "-c", watcher, run_id],
                             capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(watched.stdout)["state"] == "finished"
    assert runner.read_log(run_id, "stdout") == "done\n"


def test_a_killed_supervisor_gives_interrupted_and_takes_the_run_with_it(workspace):
    name = write(workspace, """
        import os, time
        if os.fork() == 0:
            os.setsid()  # out of the group; the parent-death signal does not reach it
            while True:
                time.sleep(1)
        print(os.getpid(), flush=True)
        while True:
            time.sleep(1)
    """)
    run_id = runner.start_run(spec(workspace, name, wall_s=60))
    # the supervisor writes down the pids it has seen; wait until it has seen both
    tracked = wait_for(lambda: (s := status(run_id)) and len(s["pids"]) == 2 and s)
    pids = [pid for pid, _ in tracked["pids"]]
    os.kill(tracked["supervisor_pid"], signal.SIGKILL)
    result = wait_for(lambda: (r := runner.run_result(run_id)).state != "running" and r)
    assert result.state == "interrupted"
    assert runner.run_result(run_id) == result  # written down
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5)


def test_memory_is_limited_by_cgroup_only_where_one_really_is_delegated(tmp_path, monkeypatch):
    """A directory that merely looks like a cgroup (no kernel-made memory.max) is not used,
    and nothing is left in it."""
    from sandbox import supervise
    from sandbox.supervise import MemoryCgroup

    monkeypatch.setattr(supervise, "own_cgroup_dir", lambda: None)
    fake = tmp_path / "cgroup"
    fake.mkdir()
    (fake / "cgroup.subtree_control").write_text("cpu memory\n")
    assert MemoryCgroup.create("bugdrill-test", 1 << 20, explicit_parent=str(fake)) is None
    assert sorted(p.name for p in fake.iterdir()) == ["cgroup.subtree_control"]


# --- ids and environment ----------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["20990101-000000-abcdef", "../etc", "ABC", "", "a/b", "x" * 80])
def test_unknown_or_malformed_run_ids_raise_run_error(run_id):
    with pytest.raises(RunError):
        runner.run_dir(run_id)
    with pytest.raises(RunError):
        runner.run_result(run_id)


def test_bad_specs_raise_run_error(workspace, tmp_path):
    with pytest.raises(RunError, match="not a directory"):
        runner.start_run(spec(tmp_path / "missing", "x.py"))
    with pytest.raises(RunError, match="BUGDRILL_STATE_DIR"):
        runner.start_run(spec(workspace, "x.py").model_copy(update={"env": {"BUGDRILL_STATE_DIR": "/x"}}))
    name = write(workspace, "pass\n")
    run_id = runner.execute(spec(workspace, name)).run_id
    with pytest.raises(RunError, match="already exists"):
        runner.start_run(spec(workspace, name), run_id=run_id)
    with pytest.raises(RunError, match="log stream"):
        runner.read_log(run_id, "stdin")


def test_the_run_sees_a_scrubbed_environment_and_writes_no_bytecode(workspace, monkeypatch, state):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    write(workspace, "VALUE = 1\n", name="helper.py")
    name = write(workspace, "import json, os, helper\nprint(json.dumps(dict(os.environ)))\n")
    run = spec(workspace, name).model_copy(update={"env": {"FOO": "bar"}})
    result = runner.execute(run)
    assert result.state == "finished", runner.read_log(result.run_id, "stderr")
    env = json.loads(runner.read_log(result.run_id, "stdout"))
    assert not {"BUGDRILL_STATE_DIR", "SECRET_TOKEN"} & env.keys()
    assert env["FOO"] == "bar" and env["PYTHONUNBUFFERED"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONPATH"] == str(runner.PROBE_DIR)
    assert env["BUGDRILL_PROBE_DIR"] == str(runner.run_dir(result.run_id) / "telemetry")
    assert sorted(p.name for p in workspace.iterdir()) == ["helper.py", "main.py"]


# --- two ranks --------------------------------------------------------------------------

def test_two_ranks_under_torchrun_finish_with_both_outputs(workspace):
    name = write(workspace, """
        import sys, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(total)
        sys.stdout.write(f"rank {dist.get_rank()} total {total.item():.0f}\\n")  # one write: lines do not mix
        dist.destroy_process_group()
    """)
    run = spec(workspace, name, wall_s=60).model_copy(update={"nproc": 2, "env": {"OMP_NUM_THREADS": "1"}})
    result = runner.execute(run)
    assert result.state == "finished", runner.read_log(result.run_id, "stderr", tail_lines=20)
    lines = sorted(runner.read_log(result.run_id, "stdout").splitlines())
    assert lines == ["rank 0 total 3", "rank 1 total 3"]
