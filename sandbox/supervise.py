"""The supervisor of one run: `python -m sandbox.supervise <run_dir> --lock-fd N`.

`runner.start_run` writes `<run_dir>/launch.json` (command, cwd, environment, limits) and
spawns this module, which detaches (forks; the first process exits at once, so the caller
never holds a zombie) and then owns the run until it ends:

* starts the command in a session and process group of its own, with stdout and stderr
  going to files in the run directory and stdin from /dev/null;
* makes itself a child subreaper, so a grandchild that calls setsid() and loses its
  parent is re-parented here, stays findable by a walk of /proc, and dies with the run;
* polls about five times a second: wall time, memory (a cgroup v2 `memory.max` when a
  delegated cgroup is available, else the summed PSS of every process of the run),
  output size (stdout.log + stderr.log), disk use (the run directory and the quota
  directories) and a stop request (`<run_dir>/stop`, or SIGTERM to this process);
* on a limit kills every process of the run — SIGTERM, then SIGKILL after a grace period
  for wall time and stop; SIGKILL at once for memory, disk and output, which grow
  while one waits — and reaps them all;
* writes `status.json` while running and `result.json` (atomically) at the end.

The flock on `supervisor.lock` (fd inherited from the runner) is held for the whole life
of this process: the runner takes a free lock as proof that the supervisor is gone. If
this process is killed outright, the training command gets its parent-death signal.

Standard library only, so that it starts fast and is independent of the caller's imports.
"""

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

MB = 1 << 20
POLL_S = 0.2
STATUS_EVERY_S = 1.0
DISK_EVERY_S = 0.5
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def write_json_atomic(path, data):
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- processes --------------------------------------------------------------------------

def proc_table():
    """{pid: (ppid, state, start time in clock ticks)} for every process in /proc."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue  # ended while we looked
        # the command name may hold spaces and parentheses: split after the last ')'
        fields = data[data.rindex(b")") + 2:].split()
        table[int(name)] = (int(fields[1]), fields[0].decode(), int(fields[19]))
    return table


def descendants(root, table):
    """Every live (not zombie) process below root in the parent tree."""
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if table[pid][1] not in ("Z", "X"):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_bytes(pid):
    """Proportional set size: shared pages split among their users, so a sum over the
    processes of a run counts each page once. Falls back to RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def tree_size(paths):
    """Bytes of the regular files under the given paths; links are not followed, and a
    file linked twice counts once."""
    seen, total = set(), 0
    todo = [p for p in paths if os.path.isdir(p)]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
            except OSError:
                continue
    return total


def exit_state(returncode):
    """(state, message) for a command that ended on its own."""
    if returncode == 0:
        return "finished", "exited with status 0"
    if returncode > 0:
        return "failed", f"exited with status {returncode}"
    return "failed", f"killed by {signal_name(returncode)}"


def signal_name(returncode):
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


# --- cgroup v2 --------------------------------------------------------------------------

class MemoryCgroup:
    """A child cgroup with `memory.max` set, made under a cgroup v2 directory that was
    delegated to us: BUGDRILL_CGROUP_PARENT (passed on by the runner), else our own cgroup
    when it has the memory controller enabled for its children. We never create cgroups
    where nobody delegated them (e.g. a systemd slice), so on most machines this is None
    and memory is polled instead."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls, name, limit_bytes, explicit_parent=None):
        for parent in filter(None, [explicit_parent, own_cgroup_dir()]):
            parent = Path(parent)
            try:
                if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                    continue
                path = parent / name
                path.mkdir()
            except OSError:
                continue
            try:
                if not (path / "memory.max").is_file():
                    raise OSError("not a cgroup with the memory controller")  # the kernel makes this file
                (path / "memory.max").write_text(str(limit_bytes))
                for knob, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if (path / knob).exists():
                        (path / knob).write_text(value)
                return cls(path)
            except OSError:
                cls(path).remove()
        return None

    def enter(self):
        """Called in the child before exec: it and all it starts belong to the cgroup."""
        with open(self.path / "cgroup.procs", "w") as f:
            f.write("0")

    def read(self, name, default=""):
        try:
            return (self.path / name).read_text()
        except OSError:
            return default

    def pids(self):
        return [int(p) for p in self.read("cgroup.procs").split()]

    def current(self):
        return int(self.read("memory.current", "0") or 0)

    def peak(self):
        return int(self.read("memory.peak", "0") or 0)

    def oom_killed(self):
        for line in self.read("memory.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and int(value) > 0:
                return True
        return False

    def kill(self):
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass

    def remove(self):
        try:
            self.path.rmdir()
        except OSError:
            pass


def own_cgroup_dir():
    """This process's cgroup v2 directory, or None without a unified hierarchy."""
    try:
        mount = next(
            line.split(" - ")[0].split()[4]
            for line in open("/proc/self/mountinfo")
            if line.split(" - ")[1].split()[0] == "cgroup2"
        )
        relative = next(line[3:].strip() for line in open("/proc/self/cgroup") if line.startswith("0::"))
    except (OSError, StopIteration, IndexError):
        return None
    return os.path.join(mount, relative.lstrip("/"))


# --- the supervisor ---------------------------------------------------------------------

class Supervisor:
    """One run, from start to result.json; `run()` is the whole life."""

    def __init__(self, run_dir, launch):
        self.run_dir = Path(run_dir)
        self.launch = launch
        self.limits = launch["limits"]
        self.grace_s = launch.get("kill_grace_s", 3.0)
        self.quota_paths = [str(self.run_dir)] + launch.get("quota_dirs", [])
        self.proc = None
        self.cgroup = None
        self.peak_bytes = 0
        self.memory_bytes = 0
        self.disk_bytes = 0
        self.stop_reason = None
        self.tracked = {}  # pid -> start ticks, for the runner's clean-up if we die

    # start -------------------------------------------------------------------------------
    def start(self):
        self.cgroup = MemoryCgroup.create(
            f"bugdrill-{self.launch['run_id']}", self.limits["memory_mb"] * MB, self.launch.get("cgroup_parent")
        )
        self.stdout = open(self.run_dir / "stdout.log", "ab")
        self.stderr = open(self.run_dir / "stderr.log", "ab")
        self.t0 = time.monotonic()
        self.started = time.time()
        self.proc = subprocess.Popen(
            self.launch["argv"],
            cwd=self.launch["cwd"],
            env=self.launch["env"],
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            start_new_session=True,
            preexec_fn=self.child_setup,
        )
        if self.cgroup and self.proc.pid not in self.cgroup.pids():
            self.cgroup.remove()  # could not enter it: poll memory instead
            self.cgroup = None
        self.write_status()

    def child_setup(self):
        """Runs in the child between fork and exec."""
        if _libc is not None:
            sig = signal.Signals[self.launch.get("pdeathsig", "SIGKILL")]
            _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
            if os.getppid() != self.pid:
                os._exit(1)  # the supervisor died before the signal was armed
        # a crash must not drop a core file into the workspace; no single file may outgrow
        # the disk quota (Python ignores SIGXFSZ: the write fails, and the next poll ends the run)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        fsize = self.limits["disk_mb"] * MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if self.launch.get("isolation") == "isolated":
            # counted per user, so it binds once the jail drops root; a fork bomb ends at the cap (a
            # user-namespace jail sets its own inside, where only the run's processes count)
            tasks = self.limits.get("processes", 512)
            resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
        if self.cgroup:
            try:
                self.cgroup.enter()
            except OSError:
                pass  # noticed by the parent, which falls back to polling

    # watch -------------------------------------------------------------------------------
    def watch(self):
        """Poll until the command exits (None) or a limit or stop request ends it:
        (state, message, grace seconds before SIGKILL)."""
        next_disk = next_status = 0.0
        while True:
            elapsed = time.monotonic() - self.t0
            try:
                self.proc.wait(timeout=max(0.0, min(POLL_S, self.limits["wall_s"] - elapsed)))
                return None
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            table = proc_table()
            pids = self.run_pids(table)
            self.memory_bytes = self.measure_memory(pids)
            self.peak_bytes = max(self.peak_bytes, self.memory_bytes)
            if self.stop_reason is None and (self.run_dir / "stop").exists():
                self.stop_reason = "stopped on request"
            if self.stop_reason:
                return "stopped", self.stop_reason, self.grace_s
            if now - self.t0 >= self.limits["wall_s"]:
                return "timed_out", f"killed after {self.limits['wall_s']:.1f} s wall-time limit", self.grace_s
            if over := self.over_memory():
                return "memory_limit", f"killed: {over}", 0
            if over := self.over_output():
                return "output_limit", f"killed: {over}", 0
            if now >= next_disk:
                self.disk_bytes = tree_size(self.quota_paths)
                if over := self.over_disk():
                    return "disk_limit", f"killed: {over}", 0
                next_disk = now + DISK_EVERY_S
            changed = set(pids) != set(self.tracked)
            self.tracked = {pid: table[pid][2] for pid in pids if pid in table}
            if changed or now >= next_status:
                self.write_status()
                next_status = now + STATUS_EVERY_S
            self.reap()

    def run_pids(self, table):
        pids = set(descendants(self.pid, table))
        if self.cgroup:
            pids.update(self.cgroup.pids())
        return sorted(pids)

    def measure_memory(self, pids):
        if self.cgroup:
            return self.cgroup.current()
        return sum(pss_bytes(pid) for pid in pids)

    def over_memory(self):
        limit = self.limits["memory_mb"]
        if self.memory_bytes > limit * MB or (self.cgroup and self.cgroup.oom_killed()):
            return f"{self.memory_bytes / MB:.0f} MB in use, over the {limit} MB memory limit"
        return None

    def output_bytes(self):
        return sum(os.fstat(f.fileno()).st_size for f in (self.stdout, self.stderr))

    def over_output(self):
        limit = self.limits["output_mb"]
        size = self.output_bytes()
        if size > limit * MB:
            return f"{size / MB:.1f} MB written to stdout/stderr, over the {limit} MB output limit"
        return None

    def over_disk(self):
        limit = self.limits["disk_mb"]
        # at the limit, not only over it: RLIMIT_FSIZE stops one file there, and Python turns the
        # kernel's signal into an OSError that a script can catch and carry on after
        if self.disk_bytes >= limit * MB:
            return f"{self.disk_bytes / MB:.1f} MB on disk, at or over the {limit} MB disk limit"
        return None

    # end ---------------------------------------------------------------------------------
    def kill_tree(self, grace_s):
        """SIGTERM (when there is a grace period), then SIGKILL until nothing of the run is
        left alive: the process group, every descendant (setsid() escapees included, as
        we are their subreaper) and the cgroup."""
        if grace_s > 0:
            self.signal_all(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self.live_pids():
                self.reap()
                time.sleep(0.05)
        for _ in range(200):  # a fork loop may add processes between two passes
            live = self.live_pids()
            if not live:
                break
            self.signal_all(signal.SIGKILL, live)
            self.reap()
            time.sleep(0.01)
        self.reap()

    def live_pids(self):
        return self.run_pids(proc_table())

    def signal_all(self, sig, pids=None):
        if self.cgroup and sig == signal.SIGKILL:
            self.cgroup.kill()
        if self.proc.returncode is None:  # until it is reaped the group id is surely ours
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass
        for pid in self.live_pids() if pids is None else pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def reap(self):
        """Collect every child that has ended: ours, and orphans re-parented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.proc.pid and self.proc.returncode is None:
                self.proc.returncode = os.waitstatus_to_exitcode(status)

    def finish(self, ending):
        """Kill what is left, then write result.json."""
        if ending is not None:
            self.kill_tree(ending[2])
        elif self.live_pids():
            self.kill_tree(self.grace_s)  # the command exited but left processes behind
        self.proc.wait()
        wall_s = time.monotonic() - self.t0
        self.reap()
        code = self.proc.returncode
        state, message = ending[:2] if ending else self.limit_after_exit(code) or exit_state(code)
        self.write_result(state, code, wall_s, message)

    def limit_after_exit(self, code):
        """A limit the command overran although no poll caught it: a writer can fill a
        quota and exit between two polls, the kernel may kill it in its cgroup, a file may
        hit RLIMIT_FSIZE."""
        ended = exit_state(code)[1]
        if code == -signal.SIGKILL and self.cgroup and self.cgroup.oom_killed():
            return "memory_limit", f"killed by the kernel at the {self.limits['memory_mb']} MB memory limit"
        if over := self.over_output():
            return "output_limit", f"{over}; {ended}"
        self.disk_bytes = tree_size(self.quota_paths)
        if over := self.over_disk():
            return "disk_limit", f"{over}; {ended}"
        if code == -signal.SIGXFSZ:
            return "disk_limit", f"killed by SIGXFSZ: a file reached the {self.limits['disk_mb']} MB disk limit"
        return None

    # files -------------------------------------------------------------------------------
    def peak_mb(self):
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        children_bytes = children if sys.platform == "darwin" else children * 1024
        cgroup_peak = self.cgroup.peak() if self.cgroup else 0
        return round(max(self.peak_bytes, children_bytes, cgroup_peak) / MB, 1)

    def write_status(self):
        write_json_atomic(self.run_dir / "status.json", {
            "state": "running",
            "run_id": self.launch["run_id"],
            "supervisor_pid": self.pid,
            "pid": self.proc.pid if self.proc else None,
            "pids": [[pid, start] for pid, start in sorted(self.tracked.items())],
            "started": self.started,
            "updated": time.time(),
            "memory_mode": "cgroup" if self.cgroup else "pss",
            "memory_mb": round(self.memory_bytes / MB, 1),
            "peak_memory_mb": round(self.peak_bytes / MB, 1),
            "disk_mb": round(self.disk_bytes / MB, 1),
            "output_mb": round(self.output_bytes() / MB, 3) if self.proc else 0.0,
        })

    def write_result(self, state, code, wall_s, message):
        write_json_atomic(self.run_dir / "result.json", {
            "run_id": self.launch["run_id"],
            "state": state,
            "exit_code": code if code is None or code >= 0 else None,
            "signal": signal_name(code),
            "wall_s": round(wall_s, 3),
            "peak_memory_mb": self.peak_mb(),
            "message": message,
        })

    # main --------------------------------------------------------------------------------
    def run(self):
        self.pid = os.getpid()
        if _libc is not None:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.start()
        except (OSError, subprocess.SubprocessError) as error:
            if self.cgroup:
                self.cgroup.remove()
            self.write_result("failed", None, 0.0, f"could not start the command: {error}")
            return
        try:
            ending = self.watch()
        except Exception:  # a bug here must still end the run and leave a result
            traceback.print_exc()
            ending = ("failed", "the supervisor failed; see supervisor.log", 0)
        self.finish(ending)
        if self.cgroup:
            self.cgroup.remove()

    def on_sigterm(self, signum, frame):
        self.stop_reason = "stopped: the supervisor received SIGTERM"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    run_dir, lock_fd = Path(argv[0]), int(argv[argv.index("--lock-fd") + 1])
    # detach: the first process exits at once so the caller reaps it and holds no zombie;
    # the second inherits the lock fd and runs the run
    if os.fork() != 0:
        os._exit(0)
    launch = json.loads((run_dir / "launch.json").read_text())
    Supervisor(run_dir, launch).run()
    os.close(lock_fd)  # releases the lock only after result.json is in place


if __name__ == "__main__":
    main()
