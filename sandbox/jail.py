"""The one launcher for workspace code: training runs of a workspace, its checks, the judge's
runs and `bugdrill validate` all execute the candidate's code through `jailed_argv`.

Workspace code is untrusted in every mode: an agent under evaluation writes it, and whatever it
can read or write while it runs, the agent can read or write through it. So it runs

* as the unprivileged OS user `bugdrill-run` (made on first use), with no capabilities, an empty
  bounding set and no_new_privs;
* in a PID namespace of its own (no other process's command line or environment in /proc) and a
  mount namespace of its own in which
    - the bugdrill packages, the repository, the distribution's files, the state directory and
      the workspace's real path are covered (the same list the agent isolation hides), and so is
      every directory on the way to the interpreter that other users may not enter (e.g. /root);
    - the interpreter and its site-packages are put back, read-only, where they were;
    - the workspace is at /episode/workspace, READ-ONLY: a run cannot plant files (a copied key,
      a hard link, a gigabyte) that the candidate tools would then serve;
    - what the run may write (its data directory, its telemetry) is bound at /episode/rw/N, and
      the probe (and, for checks, the check framework) at /episode/ro/N, read-only;
    - /tmp, /var/tmp and /dev/shm are fresh and private;
* with an environment made here from nothing: PATH, LANG, HOME=/tmp, TMPDIR, USER and the
  caller's variables, whose host paths are rewritten to their place in the jail, so nothing
  names the state directory.

Results come back as data: the run's stdout, stderr and telemetry files, read by the server.

A server that is not root, on a machine that lets users make user namespaces, gets the second
form, `mode()` "isolated (user namespace)" (BUGDRILL_ISOLATION=user-namespace asks for it
anywhere): no other user can be switched to there, so the run keeps the server's uid and what
keeps it away from the server's files is the mounts alone. It starts from an empty root rather
than the host's with holes in it:

* a user namespace mapping the server's uid alone, with PID and mount namespaces of its own;
* a new root with nothing but /usr, /etc and /sys (read-only), /dev, a fresh /proc, the
  interpreter's directories (read-only), the same /episode places as above, and fresh /tmp,
  /var/tmp and /dev/shm; the host's root is detached, so no home directory, repository or
  state directory is anywhere to be found, and whatever of ours lies inside a directory put
  back (a package installed into the interpreter's site-packages) is covered;
* no capabilities (empty bounding set, no_new_privs), so the mounts cannot be undone; the process
  cap is set inside the namespace, where it counts the run's own processes only.

Where the machine can do neither, `mode()` says "honour system": practice runs go on
unisolated and the interview says so; an eval refuses to start (BUGDRILL_ISOLATION=required).
BUGDRILL_ISOLATION=off turns the jail off on purpose (a developer debugging a run by hand).

Not covered: the network namespace is shared (training on several ranks talks over loopback);
files readable by every user elsewhere on the machine stay readable.
"""

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

RUN_USER = "bugdrill-run"
ROOT = "/episode"  # the jail's own directory; the mount point exists on the host, empty
WORKSPACE = f"{ROOT}/workspace"
LIBRARIES = f"{ROOT}/lib"  # packages of ours a jailed process may import (the check framework), by name
SETUP_FAILED = 125  # the setup's exit status, with a "bugdrill-jail:" line on stderr
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")  # fresh in the jail: the host's temporary files stay out of reach
ISOLATED = "isolated"
USER_NAMESPACE = "isolated (user namespace)"
HONOUR = "honour system"
SYSTEM = ("usr", "etc", "sys")  # what a user-namespace jail's root holds of the host's, read-only
LIBRARY_TOPS = ("bin", "lib", "lib64", "sbin", "lib32", "libx32")  # held too: as links, or like SYSTEM


class JailError(Exception):
    """Workspace code must run isolated and cannot be here: one line for the user."""


@dataclass
class Plan:
    """What one jailed command sees besides the interpreter: the workspace (read-only), host
    directories it may write, host directories it may read."""
    workspace: str
    writable: list[str] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)  # package directories, bound under LIBRARIES by name
    processes: int | None = None  # the task cap a user-namespace jail sets inside (the root jail's is the supervisor's)

    def places(self):
        """{host path: path in the jail} of everything bound."""
        found = {str(Path(self.workspace).resolve()): WORKSPACE}
        found.update({str(Path(p).resolve()): f"{ROOT}/rw/{i}" for i, p in enumerate(self.writable)})
        found.update({str(Path(p).resolve()): f"{ROOT}/ro/{i}" for i, p in enumerate(self.readable)})
        found.update({str(Path(p).resolve()): f"{LIBRARIES}/{Path(p).name}" for p in self.libraries})
        return found

    def translate(self, value):
        """A string with any bound host path replaced by its place in the jail (longest first, so
        a directory inside another bound one keeps its own place)."""
        for host, inside in sorted(self.places().items(), key=lambda item: -len(item[0])):
            if value == host or value.startswith(host + os.sep):
                return inside + value[len(host):]
            value = value.replace(host + os.pathsep, inside + os.pathsep)
        return value


def mode():
    """ISOLATED when workspace code runs in the root jail here, USER_NAMESPACE in the
    user-namespace one, else HONOUR."""
    from sandbox import isolation  # here: isolation runs the agent through the runner, which imports us

    setting = os.environ.get("BUGDRILL_ISOLATION", "auto")
    if setting == "off":
        return HONOUR
    if setting == "user-namespace":
        ok, why = user_namespaces_available()
        if not ok:
            raise JailError(f"BUGDRILL_ISOLATION=user-namespace, and no user namespace can be made here: {why}")
        return USER_NAMESPACE
    ok, why = isolation.isolation_available()
    if ok:
        return ISOLATED
    ours, why_not = user_namespaces_available()
    if ours:
        return USER_NAMESPACE
    if setting == "required":
        raise JailError(f"workspace code must run isolated (BUGDRILL_ISOLATION=required), and cannot here: {why}; "
                        f"nor in a user namespace: {why_not}")
    return HONOUR


def isolating(how):
    """Whether a mode() answer runs workspace code in a jail."""
    return how in (ISOLATED, USER_NAMESPACE)


_userns = None


def user_namespaces_available():
    """(True, "") when this process can make a user namespace with PID and mount namespaces and
    mount in it (cached), else (False, why)."""
    global _userns
    if _userns is None:
        _userns = _try_user_namespace()
    return _userns


def _try_user_namespace():
    from sandbox import isolation

    if not sys.platform.startswith("linux") or not all(shutil.which(t) for t in ("unshare", "setpriv", "bash")):
        return False, "user namespaces need Linux with unshare, setpriv and bash on PATH"
    failed = isolation.namespaces_fail([shutil.which("unshare"), *USERNS_FLAGS],
                                       "test $$ = 1 && mount -t tmpfs tmpfs /tmp && pivot_root --version >/dev/null")
    return (False, f"no user namespace with mounts here ({failed})") if failed else (True, "")


USERNS_FLAGS = ["--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
                "--propagation", "private"]


def jailed_argv(plan: Plan, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv, env) that run `argv` (an absolute program first) inside the jail with `env`
    translated; the returned env is the setup's own, the command's is in argv."""
    inner_env = {k: plan.translate(v) for k, v in env.items()}
    inner_env.update(HOME="/tmp", TMPDIR="/tmp", USER=RUN_USER)
    command = [plan.translate(a) for a in argv]
    outer_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": env.get("LANG", "C.UTF-8")}
    if mode() == USER_NAMESPACE:
        script = _user_namespace_script(plan, command, inner_env)
        return [shutil.which("unshare"), *USERNS_FLAGS, "--", shutil.which("bash"), "-c", script], outer_env

    from sandbox import isolation

    uid, gid = isolation.agent_ids(user=RUN_USER)
    Path(ROOT).mkdir(mode=0o755, exist_ok=True)
    for path in plan.writable:
        _give(Path(path), uid, gid)
    script = _setup_script(plan, uid, gid, command, inner_env)
    outer = [shutil.which("unshare"), "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
             "--propagation", "private", "--", shutil.which("bash"), "-c", script]
    return outer, outer_env


def _give(path, uid, gid):
    """A directory the run writes: made here, handed to the run user (its contents too: a stage
    after the first writes beside what the first one left)."""
    path.mkdir(parents=True, exist_ok=True)
    for parent, dirs, files in os.walk(path):
        for name in [parent, *(os.path.join(parent, n) for n in dirs + files)]:
            try:
                os.lchown(name, uid, gid)
            except OSError:
                pass


def pristine_checkouts():
    """The checkouts (a nanochat clone) that interviews of this state directory were made from: the
    pristine code of a workspace is its answer, wherever it lies on the machine."""
    from sandbox.state import state_dir

    found = set()
    for key in (state_dir() / "keys").glob("*.json"):
        try:
            path = json.loads(key.read_text()).get("codebase_path")
        except (OSError, ValueError, AttributeError):
            continue
        if path and os.path.isdir(path):
            found.add(path)
    return sorted(found)


def interpreter_paths(hidden):
    """The directories the interpreter and its packages live in, resolved: its prefixes always,
    other entries of sys.path only where nothing hidden holds them (the repository is on
    sys.path of a source checkout; its virtual environment is a prefix)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    found = {Path(os.path.realpath(p)) for p in prefixes}
    for entry in sys.path:
        path = Path(os.path.realpath(entry)) if entry else None
        if path and path.is_dir() and not _inside(path, hidden) and not any(path in h.parents for h in hidden):
            found.add(path)
    return [p for p in found if not _inside(p, [o for o in found if o != p])]  # outermost only


def _closed_ancestors(path):
    """Directories above `path` that other users may not enter (e.g. /root, mode 0700)."""
    found = []
    for parent in reversed(Path(path).parents):
        try:
            if not os.stat(parent).st_mode & 0o001:
                found.append(parent)
        except OSError:
            break
    return found


def _inside(path, others):
    return any(path == o or o in path.parents for o in others)


def _outermost(paths):
    return sorted((p for p in paths if not _inside(p, [o for o in paths if o != p])), key=lambda p: len(p.parts))


def _setup_script(plan, uid, gid, command, env):
    """The root shell (bash: descriptors above 9) that builds the jail, then becomes the run."""
    from sandbox import isolation

    q = shlex.quote
    hidden = isolation.hidden_paths([plan.workspace, *pristine_checkouts()])
    places = plan.places()
    fresh = [Path(p) for p in PRIVATE if os.path.isdir(p)]
    keep = interpreter_paths(hidden)
    covers = set(fresh) | {h for h in hidden if not _inside(h, keep)}
    for path in keep:
        covers.update(_closed_ancestors(path))
    covers = _outermost(covers)
    keep = [k for k in keep if _inside(k, covers)]  # only what a cover hides is put back
    inner_hidden = [h for h in hidden if _inside(h, keep) and not _inside(h, fresh)]

    sources = [*[str(k) for k in keep], *places]
    lines = _opened(sources)
    lines.append(f"mount -t tmpfs -o mode=0755,size=64k tmpfs {ROOT} || fail 'cannot make {ROOT}'")
    for path in covers:
        if path in fresh:
            how = "mount -t tmpfs -o mode=1777,size=1024m tmpfs"
        elif path.is_dir():
            how = "mount -t tmpfs -o mode=0755,size=64k tmpfs"
        else:
            how = "mount --bind /dev/null"
        lines.append(f"{how} {q(str(path))} || fail {q(f'cannot cover {path}')}")
    lines += _bound(sources, places) + _hidden(inner_hidden)
    for path in [*covers, Path(ROOT)]:
        if path.is_dir() and path not in fresh:
            lines.append(f"mount -o remount,ro {q(str(path))} || fail {q(f'cannot seal {path}')}")
    lines.append(_closed(sources))
    return "\n".join(lines + _become([f"--reuid={uid}", f"--regid={gid}", "--clear-groups"], command, env))


def _user_namespace_script(plan, command, env):
    """The shell (root of a user namespace) that builds a root from nothing, pivots into it and
    becomes the run, without capabilities."""
    from sandbox import isolation

    q = shlex.quote
    hidden = isolation.hidden_paths([plan.workspace, *pristine_checkouts()])
    places = plan.places()
    tops = [Path("/", name) for name in (*SYSTEM, *LIBRARY_TOPS)]
    system = [p for p in tops if p.is_dir() and not p.is_symlink()]
    links = [p for p in tops if p.is_symlink()]  # /bin -> usr/bin on a merged-/usr system
    keep = [k for k in interpreter_paths(hidden) if not _inside(k, system)]
    inner_hidden = [h for h in hidden if _inside(h, [*system, *keep])]
    new_root = "/tmp"  # any directory: the namespace's own tmpfs goes over it, the host's stays as it was

    def at(path):
        return new_root + str(path)

    sources = [*[str(k) for k in keep], *places]
    lines = _opened(sources)  # a source under /tmp stays reachable once the new root covers it
    lines.append(f"mount -t tmpfs -o mode=0755,size=64k tmpfs {new_root} || fail 'cannot make a root'")
    for path in system:
        lines.append(f"mkdir -p {q(at(path))} && mount --rbind {q(str(path))} {q(at(path))} "
                     f"&& mount -o remount,bind,ro {q(at(path))} || fail {q(f'cannot bind {path}')}")
    for link in links:
        lines.append(f"ln -s {q(os.readlink(link))} {q(at(link))} || fail {q(f'cannot link {link}')}")
    lines.append(f"mkdir -p {q(at('/dev'))} && mount --rbind /dev {q(at('/dev'))} || fail 'cannot bind /dev'")
    lines.append(f"mkdir -p {q(at('/proc'))} && mount -t proc proc {q(at('/proc'))} || fail 'cannot mount /proc'")
    for path in PRIVATE:
        lines.append(f"mkdir -p {q(at(path))} && mount -t tmpfs -o mode=1777,size=1024m tmpfs {q(at(path))} "
                     f"|| fail {q(f'cannot make {path}')}")
    lines += _bound(sources, places, at) + _hidden(inner_hidden, at)
    lines.append(_closed(sources))
    lines += [f"mkdir {q(at('/.host'))} && cd {q(new_root)} && pivot_root . .host || fail 'cannot enter the new root'",
              "umount -l /.host && rmdir /.host || fail 'cannot let go of the host root'",
              "mount -o remount,bind,ro / || fail 'cannot seal the root'"]
    if plan.processes:
        lines.append(f"ulimit -u {int(plan.processes)} || fail 'cannot cap the processes'")
    return "\n".join(lines + _become([], command, env))


def _opened(sources):
    """The script's first lines: its fail(), and a descriptor on every bind source (10 up), opened
    before anything is covered, so that each stays reachable through /proc/self/fd."""
    q = shlex.quote
    lines = ['fail() { echo "bugdrill-jail: $1" >&2; exit %d; }' % SETUP_FAILED]
    for fd, source in enumerate(sources, start=10):
        lines.append(f"exec {fd}<{q(source)} || fail {q(f'cannot open {source}')}")
    return lines


def _bound(sources, places, at=str):
    """Each source bound at its place (its own path where it has none), read-only but for /episode/rw."""
    q = shlex.quote
    lines = []
    for fd, source in enumerate(sources, start=10):
        place = places.get(source, source)
        target = at(place)
        lines.append(f"mkdir -p {q(target)} && mount --no-canonicalize --bind /proc/self/fd/{fd} {q(target)} "
                     f"|| fail {q(f'cannot bind {target}')}")
        if not place.startswith(f"{ROOT}/rw/"):
            lines.append(f"mount -o remount,bind,ro {q(target)} || fail {q(f'cannot make {target} read-only')}")
    return lines


def _hidden(paths, at=str):
    """An empty read-only directory, or /dev/null, over each of ours inside something put back."""
    q = shlex.quote
    return [f"{'mount -t tmpfs -o ro,mode=0755,size=4k tmpfs' if p.is_dir() else 'mount --bind /dev/null'} "
            f"{q(at(p))} || fail {q(f'cannot hide {p}')}" for p in paths]


def _closed(sources):
    return "exec " + " ".join(f"{fd}<&-" for fd in range(10, 10 + len(sources)))


def _become(who, command, env):
    """The last lines: into the workspace, then the command with no capabilities (as `who` says)."""
    setpriv = [shutil.which("setpriv"), *who, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    envline = [shutil.which("env"), "-i", *(f"{k}={v}" for k, v in env.items())]
    return [f"cd {WORKSPACE} || fail 'cannot enter the workspace'", "exec " + shlex.join(setpriv + envline + command)]
