"""Workspace code is untrusted: what a training run or a check of a workspace can reach, and what
it cannot make a check say (sandbox/jail.py, bug_catalog/checking.py, the runner's limits).

Each test plants what an agent under evaluation would plant in its workspace (edit_file can
write any file there) and asserts the attack fails, in both jails: the root one (a user of its
own) and the user-namespace one a server that is not root gets (the server's own uid, kept away
from the server's files by the mounts alone; here it runs as root mapped to itself, which is
the harder case for those mounts). Each jail's tests are skipped with the reason where it cannot
be made, where runs go on under the honour system (which a test checks is said).
"""

import json
import os
import textwrap
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from sandbox import jail, runner
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.isolation import isolation_available
from sandbox.state import answer_key_path
from sandbox.training import TrainingRequest, train
from sandbox.workspace import create_workspace

AVAILABLE, WHY = isolation_available()
USERNS, WHY_NOT_USERNS = jail.user_namespaces_available()
JAILS = [pytest.param("auto", marks=pytest.mark.skipif(not AVAILABLE, reason=f"the root jail is unavailable here: {WHY}"),
                      id="root-jail"),
         pytest.param("user-namespace", id="user-namespace-jail", marks=pytest.mark.skipif(
             not USERNS, reason=f"the user-namespace jail is unavailable here: {WHY_NOT_USERNS}"))]


@pytest.fixture(autouse=True, params=JAILS)
def kind(request, monkeypatch):
    """Which jail the test's runs and checks go through (BUGDRILL_ISOLATION)."""
    monkeypatch.setenv("BUGDRILL_ISOLATION", request.param)
    return request.param


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"  # BUGDRILL_ISOLATION=off from outside shows each attack succeed unjailed


def workspace_with(tmp_path, bug=None, variant=None):
    catalog = load_catalog()
    chosen = []
    if bug is not None:
        record = catalog[bug]
        chosen = [(record, next(v for v in record.variants if variant in (None, v.name)))]
    return create_workspace(tmp_path / "ws", PICOCHAT_DIR, chosen, seed=0)


def plant(workspace, relative, text):
    path = Path(workspace) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


SPY = """
import glob, json, os
found = {"env": dict(os.environ), "uid": os.getuid(), "pids": [p for p in os.listdir("/proc") if p.isdigit()]}
found["keys"] = glob.glob("%(state)s/**/*.json", recursive=True)
found["template"] = os.path.exists("%(template)s")
found["packages"] = [p for p in ("%(repo)s/server", "%(repo)s/bug_catalog") if os.path.exists(p)]
for target in ("%(workspace)s/stolen.json", "stolen.json", "%(home)s/.bugdrill-spy", "%(repo)s/.bugdrill-spy"):
    try:
        open(target, "w").write("x")
        found.setdefault("planted", []).append(target)
    except OSError:
        pass
print("SPY " + json.dumps(found))
"""


def test_a_run_of_workspace_code_reaches_no_key_template_process_or_state_path(tmp_path, state, kind):
    key = workspace_with(tmp_path, bug=1)
    workspace = key["workspace"]
    repo = Path(__file__).resolve().parents[1]
    plant(workspace, "picochat/__init__.py", SPY % {
        "state": state, "template": PICOCHAT_DIR / "picochat" / "gpt.py", "repo": repo, "workspace": workspace,
        "home": Path.home()})
    training = train(workspace, TrainingRequest(steps=2, args=["--num_samples=0"]))
    stdout = runner.read_log(training.stages[0], "stdout")
    spy = json.loads(next(line for line in stdout.splitlines() if line.startswith("SPY "))[4:])
    if kind == "auto":
        assert spy["uid"] != 0  # the root jail's run user; the user-namespace one keeps the server's uid
    assert spy["keys"] == [] and not spy["template"] and spy["packages"] == []
    assert spy["pids"] and all(int(p) < 100 for p in spy["pids"]), "another process is visible"
    assert not any(str(state) in value for value in spy["env"].values()), spy["env"]
    assert not [t for t in spy.get("planted", []) if t.endswith("stolen.json")], "the run wrote into the workspace"
    assert not (Path(workspace) / "stolen.json").exists()
    # the home and repository files are judged on the host: inside the jail a path under /tmp (a
    # repository checked out there) lies in the jail's own /tmp, where a write reaches nothing
    assert not (Path.home() / ".bugdrill-spy").exists() and not (repo / ".bugdrill-spy").exists()
    assert answer_key_path(workspace).is_file()  # the key is there; the run could not see it


def test_shadowed_check_framework_and_torch_do_not_forge_a_pass(tmp_path):
    key = workspace_with(tmp_path, bug=36)
    workspace = key["workspace"]
    check = load_catalog()[36].check
    forged = "import json, sys\nprint(json.dumps({n: {'passed': True, 'detail': ''} for n in sys.argv[1:]}))\n"
    plant(workspace, "bug_catalog/__init__.py", "")
    plant(workspace, "bug_catalog/run_check.py", forged)
    plant(workspace, "torch/__init__.py", "raise SystemExit(0)\n")
    assert run_checks(workspace, [check])[check]["passed"] is False


def test_monkeypatching_the_framework_from_the_codebase_does_not_forge_a_pass(tmp_path):
    key = workspace_with(tmp_path, bug=36)
    workspace = key["workspace"]
    check = load_catalog()[36].check
    plant(workspace, "picochat/__init__.py", """
        import json, os, sys
        try:
            from bug_catalog import registry
            for name in list(registry.CHECKS):
                registry.CHECKS[name] = lambda: None
        except ImportError:
            pass
        names = [a for a in sys.argv if not a.startswith(("/", "-"))]
        sys.stdout.write(json.dumps({n: {"passed": True, "detail": ""} for n in names}) + "\\n")
        sys.stdout.flush()
        os._exit(0)
    """)
    result = run_checks(workspace, [check])[check]
    assert result["passed"] is False, result


def test_an_honest_fix_still_passes_in_the_jail(tmp_path):
    key = workspace_with(tmp_path, bug=36)
    check = load_catalog()[36].check
    bug = key["bugs"][0]
    assert run_checks(key["workspace"], [check])[check]["passed"] is False
    (Path(key["workspace"]) / bug["file"]).write_text(bug["pristine"])
    assert run_checks(key["workspace"], [check])[check] == {"passed": True, "detail": ""}


def run_script(tmp_path, code, **limits):
    workspace = tmp_path / "code"
    workspace.mkdir()
    (workspace / "main.py").write_text(textwrap.dedent(code))
    data = tmp_path / "data"
    data.mkdir()
    spec = runner.RunSpec(workspace=str(workspace), argv=["main.py"], env={"OUT": str(data)}, probe=False,
                          quota_dirs=[str(data)], limits=runner.Limits(wall_s=60, **limits), untrusted=True)
    return runner.execute(spec)


def test_a_file_at_the_per_file_limit_ends_the_run_even_when_the_error_is_caught(tmp_path):
    result = run_script(tmp_path, """
        import os, time
        try:
            with open(os.path.join(os.environ["OUT"], "big"), "wb") as f:
                while True:
                    f.write(b"x" * (1 << 20))
        except OSError:
            pass
        time.sleep(30)
    """, disk_mb=8)
    assert result.state == "disk_limit", result


def test_a_fork_bomb_stops_at_the_process_limit(tmp_path, kind):
    if kind == "user-namespace" and os.geteuid() == 0:
        pytest.skip("root's own uid is exempt from RLIMIT_NPROC in every namespace; the user-namespace jail's "
                    "cap (ulimit -u inside) binds for a server that is not root")
    result = run_script(tmp_path, """
        import os, time
        made = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
                made += 1
        except OSError:
            pass
        print("made", made)
    """, processes=16)
    made = int(runner.read_log(result.run_id, "stdout").split()[-1])
    assert made < 16, made


def test_the_launch_says_whether_a_run_was_isolated(tmp_path, monkeypatch, kind):
    result = run_script(tmp_path, "print('hello')\n")
    said = json.loads((runner.run_dir(result.run_id) / "launch.json").read_text())["isolation"]
    assert said == {"auto": "isolated", "user-namespace": "isolated (user namespace)"}[kind]
    monkeypatch.setenv("BUGDRILL_ISOLATION", "off")
    assert jail.mode() == "honour system"


def test_a_server_that_is_not_root_gets_the_user_namespace_jail_or_the_honour_system(monkeypatch, kind):
    from sandbox import isolation

    monkeypatch.setattr(isolation, "isolation_available", lambda: (False, "not root"))
    for setting in ("auto", "required"):
        monkeypatch.setenv("BUGDRILL_ISOLATION", setting)
        assert jail.mode() == "isolated (user namespace)"
    monkeypatch.setattr(jail, "user_namespaces_available", lambda: (False, "no user namespaces here"))
    monkeypatch.setenv("BUGDRILL_ISOLATION", "required")
    with pytest.raises(jail.JailError, match="no user namespaces here"):
        jail.mode()
    monkeypatch.setenv("BUGDRILL_ISOLATION", "user-namespace")
    with pytest.raises(jail.JailError, match="no user namespaces here"):
        jail.mode()
    monkeypatch.setenv("BUGDRILL_ISOLATION", "auto")
    assert jail.mode() == "honour system"


def test_a_user_namespace_inside_the_jail_cannot_lift_the_covers(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    result = run_script(tmp_path, f"""
        import subprocess
        lifted = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                                 "umount -l {repo} 2>/dev/null; ls -A {repo}"], capture_output=True, text=True)
        print("LISTING", lifted.stdout.split())
    """)
    listing = runner.read_log(result.run_id, "stdout")
    assert "LISTING" in listing
    assert "server" not in listing and "bug_catalog" not in listing and "pyproject.toml" not in listing, listing
