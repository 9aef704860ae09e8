"""An agent under evaluation, run isolated: it reaches its episode's workspace and a
candidate-role MCP server on loopback, and nothing of bugdrill's own.

`run_agent(AgentSpec(...))` runs one command-line agent (for example Claude Code headless)
against one episode and returns when it has ended, hit a limit, or failed to start.

The contract an agent gets
--------------------------
* Its command runs as `/bin/sh -c COMMAND` with the working directory `/episode/workspace`,
  the episode's workspace (read and write; edits land in the real workspace).
* Environment, and nothing else from the caller (no BUGDRILL_STATE_DIR, no PYTHONPATH):
  PATH (system directories unless the caller names others), HOME=/episode/home (fresh and
  the agent's own), LANG, TMPDIR=/tmp, USER, plus
    BUGDRILL_WORKSPACE   /episode/workspace
    BUGDRILL_MCP_URL     the candidate-role server's streamable-HTTP URL
    BUGDRILL_MCP_CONFIG  /episode/mcp.json
    BUGDRILL_TASK_FILE   /episode/task.md, the task statement (stdin is /dev/null)
  and the extra variables the caller passes by name (e.g. an API key).
* `{"mcpServers": {"bugdrill": {"type": "http", "url": URL}}}` is written to
  /episode/mcp.json, $HOME/.mcp.json and $HOME/.claude.json (Claude Code's user scope), so
  `claude -p "$(cat "$BUGDRILL_TASK_FILE")" --mcp-config "$BUGDRILL_MCP_CONFIG"` finds the
  server; nothing is written into the workspace.
* The episode directory (task.md, mcp.json, home/) is kept after the run for the caller to
  read (e.g. an agent's transcripts under home/) and remove: `AgentResult.episode_dir`.

The isolation (Linux, run as root)
----------------------------------
* A dedicated OS user, `bugdrill-agent` (created with useradd on first use), with no
  capabilities, an empty bounding set and no_new_privs (setuid programs gain nothing).
* A new PID namespace with its own /proc: the agent sees its own processes only, so no
  server command line, environment or cwd of another process.
* A new mount namespace: the episode directory and the workspace are bind-mounted at
  /episode; then an empty read-only tmpfs covers the packages `server`, `sandbox`,
  `bug_catalog`, `evals`, `bugdrill` (found from their import specs and from the installed
  distribution's file list), the editable install's repository and its git directory,
  the distribution's metadata directory, the state
  directory (state_dir() and $BUGDRILL_STATE_DIR), and /dev/null covers every file the
  distribution installed (the `bugdrill` console script, the editable .pth and finder).
  /tmp, /var/tmp and /dev/shm are fresh, so the caller's temporary files are out of reach.
* For the run the workspace tree is chowned to the agent user and given back to its
  owner afterwards (files the agent made included): the agent can write, and git as root
  in the workspace does not meet a repository owned by someone else ("dubious ownership").
* Limits and clean-up are the runner's (`sandbox.runner`): wall time, memory, disk
  (workspace and episode directory), output; at the end every process is killed, and the
  PID namespace guarantees it: its init dies, the kernel kills the rest.

Not covered: the network namespace is shared (the MCP server is on loopback), so
anything else listening on the machine, an interviewer-role server included, is
reachable and must not run during an eval; files readable by every user elsewhere on the
machine (another checkout of bugdrill, a wheel in a cache) stay readable — pass them as
`hide`, or use a container; other episodes' workspaces outside the state directory are
owned by the same agent user while they run. /proc/self/mountinfo names the covered
paths and the workspace's real path (not what is in them); the agent's stdout and stderr
are files in the run's directory, which it can name through /proc/self/fd but not list.
The private /tmp is a tmpfs (at most the disk limit, 1 GB): memory the memory limit does
not see. Files the MCP server creates in the workspace during the run belong to root:
the agent can replace or delete them, not edit them in place.
"""

import importlib.metadata
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from sandbox import runner
from sandbox.runner import Limits, RunResult, RunSpec, RunState
from sandbox.state import state_dir

AGENT_USER = "bugdrill-agent"
EPISODE_DIR = "/episode"  # the mount point; made on the host once, empty
WORKSPACE = f"{EPISODE_DIR}/workspace"
HOME = f"{EPISODE_DIR}/home"
TASK_FILE = f"{EPISODE_DIR}/task.md"
MCP_CONFIG = f"{EPISODE_DIR}/mcp.json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGES = ("server", "sandbox", "bug_catalog", "evals", "bugdrill")
DISTRIBUTION = "bugdrill"
SETUP_FAILED = 125  # the setup script's exit status, with a "bugdrill-isolation:" line on stderr
SETUP_DONE = "setup.done"  # written in the episode directory by root once the mounts are made
TOOLS = ("unshare", "setpriv", "mount", "env", "sh")
_CONTRACT = {"PATH", "HOME", "LANG", "TMPDIR", "USER"}  # set by us; BUGDRILL_* too
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# exec the rest of argv: the runner puts its Python in front of every command
_EXEC = "import os, sys; os.execv(sys.argv[1], sys.argv[1:])"


class IsolationError(Exception):
    """Isolation cannot be set up here (not root, no namespaces, bad spec): one line for the user."""


class AgentSpec(BaseModel):
    command: str = Field(min_length=1, description="run as /bin/sh -c COMMAND inside the isolation")
    workspace: str
    mcp_url: str
    task_text: str
    limits: Limits = Limits()
    env: dict[str, str] = {}  # extra variables for the agent, e.g. an API key
    path: str = DEFAULT_PATH
    hide: list[str] = []  # more files or directories to cover
    episode_parent: str | None = None  # where the episode directory is made (default: the temp dir)
    label: str = ""


class AgentResult(BaseModel):
    run_id: str
    state: RunState  # the runner's: finished, failed, timed_out, memory_limit, ...
    exit_code: int | None
    signal: str | None
    limit_hit: str | None  # "wall", "memory", "disk", "output" or None
    wall_s: float
    peak_memory_mb: float
    message: str
    stdout_path: str
    stderr_path: str
    episode_dir: str  # task.md, mcp.json and home/, kept for the caller to read and remove
    home_dir: str


# --- can we? ----------------------------------------------------------------------------

_available = None


def isolation_available() -> tuple[bool, str]:
    """(True, "") when run_agent can isolate here, else (False, why and what to do)."""
    global _available
    if _available is None:
        _available = _check_available()
    return _available


def _check_available():
    if not sys.platform.startswith("linux"):
        return False, "agent isolation needs Linux namespaces"
    if os.geteuid() != 0:
        return False, "agent isolation needs root (mount and PID namespaces, a separate user): run the eval as root"
    if not _all_users_mapped():
        return False, "this is a user namespace that maps root alone: no other user can be switched to"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return False, f"agent isolation needs {', '.join(missing)} (util-linux, coreutils) on PATH"
    failed = namespaces_fail(["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
                              "--propagation", "private"], "test $$ = 1 && mount -t tmpfs tmpfs /tmp")
    if failed:
        return False, f"PID and mount namespaces do not work here ({failed}); a container needs CAP_SYS_ADMIN"
    return True, ""


def namespaces_fail(unshare, script):
    """'' when `script` succeeds under the `unshare` command line, else the last line it said."""
    try:
        probe = subprocess.run([*unshare, "--", "sh", "-c", script], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"could not try: {error}"
    if probe.returncode == 0:
        return ""
    return (probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"status {probe.returncode}"])[0]


def _all_users_mapped():
    """Whether this process's user namespace maps more than root (`unshare -r` maps uid 0 alone)."""
    try:
        with open("/proc/self/uid_map") as f:
            return sum(int(line.split()[2]) for line in f if line.strip()) > 65536
    except (OSError, ValueError, IndexError):
        return True  # no such file: not Linux's user namespaces, judged by the checks that follow


def agent_ids(create: bool = True, user: str = AGENT_USER) -> tuple[int, int]:
    """The uid and gid of `user` (the agent's by default), created as a system user when missing
    (root only)."""
    try:
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    if not create or os.geteuid() != 0:
        raise IsolationError(
            f"no user {user!r}: run as root (it is created on first use) or create it with "
            f"`useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {user}`"
        )
    done = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", user],
        capture_output=True, text=True,
    )
    if done.returncode not in (0, 9):  # 9: made meanwhile by someone else
        raise IsolationError(f"could not create the user {user!r}: {done.stderr.strip()}")
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# --- what to hide -----------------------------------------------------------------------

def hidden_paths(extra=()) -> list[Path]:
    """Every file and directory the agent must not reach, resolved, outermost first, none
    inside another."""
    found = set()
    for name in PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found.update(Path(p) for p in spec.submodule_search_locations or [])
            if spec.origin and spec.submodule_search_locations is None:
                found.add(Path(spec.origin))
            for location in spec.submodule_search_locations or []:
                if (Path(location).parent / "pyproject.toml").is_file():  # a source checkout
                    found.update(_repository(Path(location).parent))
    found.update(_distribution_files())
    found.add(state_dir())
    if os.environ.get("BUGDRILL_STATE_DIR"):
        found.add(Path(os.environ["BUGDRILL_STATE_DIR"]))
    script = shutil.which("bugdrill")
    if script:
        found.add(Path(script))
    found.update(Path(p) for p in extra)
    paths = sorted({Path(os.path.realpath(p)) for p in found if os.path.lexists(p)}, key=lambda p: len(p.parts))
    if Path("/") in paths:
        raise IsolationError("refusing to hide / itself")
    kept = []
    for path in paths:
        if not any(parent in path.parents for parent in kept) and path not in kept:
            kept.append(path)
    return kept


def _repository(root):
    """A checkout and its git directory (which may live elsewhere, for a worktree)."""
    found = [root]
    try:
        common = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True, text=True, timeout=10,
        )
        if common.returncode == 0 and common.stdout.strip():
            found.append(Path(common.stdout.strip()))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return found


def _distribution_files():
    """Each installed copy of the distribution (a source checkout's egg-info counts too):
    its files (console scripts, .pth, finder), its metadata directory and, for an editable
    install, the source directory it points at."""
    found = []
    for dist in importlib.metadata.distributions(name=DISTRIBUTION):
        for file in dist.files or []:
            # a package's whole directory, so that not even its file names show; the shared
            # __pycache__ and what lies outside (../../bin/bugdrill) file by file
            top = file.parts[0]
            whole = len(file.parts) > 1 and top not in ("..", "__pycache__")
            found.append(Path(dist.locate_file(top if whole else file)))
        info = getattr(dist, "_path", None)
        if info is not None:
            found.append(Path(info))
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        except ValueError:
            url = ""
        if url.startswith("file://"):
            found.extend(_repository(Path(url[len("file://"):])))
    return found


# --- running ----------------------------------------------------------------------------

def run_agent(spec: AgentSpec, on_poll: Callable[[RunResult], None] | None = None) -> AgentResult:
    """Run the agent isolated until it ends or a limit stops it; never raises for what the
    agent does (a missing command, a hang, a crash are results), only for an isolation that
    cannot be made (IsolationError), before the agent started."""
    ok, why = isolation_available()
    if not ok:
        raise IsolationError(why)
    workspace = Path(spec.workspace).expanduser().resolve()
    if not workspace.is_dir():
        raise IsolationError(f"workspace {spec.workspace!r} is not a directory")
    for key in spec.env:
        if key.startswith("BUGDRILL_") or key in _CONTRACT or not _NAME.fullmatch(key):
            raise IsolationError(f"{key!r} may not be passed to the agent")
    hide = hidden_paths(spec.hide)  # the workspace is bound first, so it may live under one of them
    for path in hide:
        if path == workspace or workspace in path.parents:
            raise IsolationError(f"workspace {str(workspace)!r} holds {str(path)!r}, which the agent may not see")
    uid, gid = agent_ids()
    Path(EPISODE_DIR).mkdir(mode=0o755, exist_ok=True)
    episode = Path(tempfile.mkdtemp(prefix="bugdrill-episode-", dir=spec.episode_parent))
    _write_episode(episode, spec, uid, gid)
    owner = workspace.stat()
    _chown_tree(workspace, uid, gid)
    try:
        run_id = runner.start_run(RunSpec(
            workspace=str(workspace),
            argv=["-I", "-S", "-c", _EXEC, *_command(spec, workspace, episode, hide, uid, gid)],
            limits=spec.limits, probe=False, quota_dirs=[str(workspace), str(episode)],
            label=spec.label or "agent",
        ))
        try:
            result = runner.wait_run(run_id, on_poll=on_poll)
        except BaseException:  # the caller gave up (cancelled, interrupted): the agent must not outlive it
            runner.stop_run(run_id)
            raise
    finally:
        _chown_tree(workspace, owner.st_uid, owner.st_gid)
    return _agent_result(result, episode)


def _write_episode(episode, spec, uid, gid):
    """The episode directory, bound at /episode: workspace/ (a mount point), home/ (the
    agent's), task.md and mcp.json (root's, read-only to the agent)."""
    episode.chmod(0o755)
    (episode / "workspace").mkdir()
    home = episode / "home"
    home.mkdir(mode=0o700)
    config = json.dumps({"mcpServers": {"bugdrill": {"type": "http", "url": spec.mcp_url}}}, indent=2) + "\n"
    (episode / "task.md").write_text(spec.task_text)
    (episode / "mcp.json").write_text(config)
    for name in (".mcp.json", ".claude.json"):
        (home / name).write_text(config)
    for path in (home, home / ".mcp.json", home / ".claude.json"):
        os.chown(path, uid, gid)
    for name in ("task.md", "mcp.json"):
        (episode / name).chmod(0o644)


def _chown_tree(root, uid, gid):
    """Give the tree to uid:gid, never following a link (the agent may plant one pointing
    anywhere), never leaving the workspace's filesystem, and passing over a file linked
    from elsewhere (a hard link to a file outside would hand that file over). chown also
    clears set-user-ID bits, so nothing the agent made becomes a root program."""
    top = os.lstat(root)
    os.lchown(root, uid, gid)
    for parent, dirs, files in os.walk(root):  # os.walk does not follow links to directories
        for name in list(dirs) + files:
            path = os.path.join(parent, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_dev != top.st_dev:
                if name in dirs:
                    dirs.remove(name)
                continue
            if stat.S_ISDIR(st.st_mode) or st.st_nlink == 1:
                try:
                    os.lchown(path, uid, gid)
                except OSError:
                    pass


def _command(spec, workspace, episode, hide, uid, gid):
    """unshare → a root shell that mounts, then setpriv → env -i → /bin/sh -c COMMAND as the
    agent, which becomes PID 1 of the namespace (no setup shell left to see)."""
    q = shlex.quote
    lines = [
        'fail() { echo "bugdrill-isolation: $1" >&2; exit %d; }' % SETUP_FAILED,
        f"mount --bind {q(str(episode))} {EPISODE_DIR} || fail 'could not bind the episode directory'",
        f"mount --bind {q(str(workspace))} {WORKSPACE} || fail 'could not bind the workspace'",
    ]
    for path in hide:
        if path.is_dir():
            how = "mount -t tmpfs -o ro,mode=0755,size=4k tmpfs"
        else:
            how = "mount --bind /dev/null"
        lines.append(f"{how} {q(str(path))} || fail {q(f'could not hide {path}')}")
    tmp_mb = max(16, min(spec.limits.disk_mb, 1024))
    for path in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            lines.append(f"mount -t tmpfs -o mode=1777,size={tmp_mb}m tmpfs {path} || fail 'could not make {path}'")
    env = {
        "PATH": spec.path, "HOME": HOME, "LANG": os.environ.get("LANG", "C.UTF-8"), "TMPDIR": "/tmp",
        "USER": AGENT_USER, "BUGDRILL_WORKSPACE": WORKSPACE, "BUGDRILL_MCP_URL": spec.mcp_url,
        "BUGDRILL_MCP_CONFIG": MCP_CONFIG, "BUGDRILL_TASK_FILE": TASK_FILE, **spec.env,
    }
    agent = [
        shutil.which("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--bounding-set=-all", "--",
        shutil.which("env"), "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", spec.command,
    ]
    lines += [
        f"cd {WORKSPACE} || fail 'could not enter the workspace'",
        f": > {EPISODE_DIR}/{SETUP_DONE} || fail 'could not mark the set-up done'",  # the agent cannot write there
        "exec " + shlex.join(agent),
    ]
    return [
        shutil.which("unshare"), "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
        "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines),
    ]


_LIMITS = {"timed_out": "wall", "memory_limit": "memory", "disk_limit": "disk", "output_limit": "output"}


def _agent_result(result, episode):
    path = runner.run_dir(result.run_id)
    if result.state == "failed" and not (episode / SETUP_DONE).exists():
        last = runner.read_log(result.run_id, "stderr", tail_lines=1).strip()
        shutil.rmtree(episode, ignore_errors=True)
        raise IsolationError(f"the isolation could not be set up: {last.removeprefix('bugdrill-isolation:').strip()}")
    message = result.message
    if result.state == "failed" and result.exit_code in (126, 127):
        last = runner.read_log(result.run_id, "stderr", tail_lines=1).strip()
        what = "was not found" if result.exit_code == 127 else "could not be executed"
        message = f"the agent command {what} (exit status {result.exit_code} from /bin/sh): {last}"
    return AgentResult(
        run_id=result.run_id, state=result.state, exit_code=result.exit_code, signal=result.signal,
        limit_hit=_LIMITS.get(result.state), wall_s=result.wall_s, peak_memory_mb=result.peak_memory_mb,
        message=message, stdout_path=str(path / "stdout.log"), stderr_path=str(path / "stderr.log"),
        episode_dir=str(episode), home_dir=str(episode / "home"),
    )
