"""The bugdrill command line on blind workspaces, run as a user would: a real subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.split import variants_in


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


def bugdrill(state_dir, *args):
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_bugs_lists_the_catalogue_as_json(state_dir):
    result = bugdrill(state_dir, "bugs", "--json")
    assert result.returncode == 0
    listed = json.loads(result.stdout)
    assert sorted(b["id"] for b in listed) == sorted(load_catalog())


def test_inject_prints_nothing_that_names_the_bug(state_dir, tmp_path):
    result = bugdrill(state_dir, "inject", "random", "--workspace", str(tmp_path / "ws"), "--seed", "7")
    assert result.returncode == 0, result.stderr
    key = json.loads(next((state_dir / "keys").glob("*.json")).read_text())
    record = load_catalog()[key["bugs"][0]["id"]]
    said = (result.stdout + result.stderr).lower()
    for giveaway in (record.slug, record.title.lower(), key["bugs"][0]["variant"], key["bugs"][0]["file"]):
        assert giveaway.lower() not in said


def test_inject_then_check_then_restore_round_trip(state_dir, tmp_path):
    workspace = tmp_path / "ws"
    assert bugdrill(state_dir, "inject", "1", "--workspace", str(workspace), "--variant", "1").returncode == 0
    check = bugdrill(state_dir, "check", "--workspace", str(workspace), "--json")
    assert check.returncode == 1 and json.loads(check.stdout) == {"fixed": False}
    revealed = json.loads(bugdrill(state_dir, "reveal", "--workspace", str(workspace), "--json").stdout)
    assert revealed[0]["id"] == 1 and revealed[0]["diff"].startswith("--- a/")
    assert bugdrill(state_dir, "restore", "--workspace", str(workspace)).returncode == 0
    check = bugdrill(state_dir, "check", "--workspace", str(workspace), "--json")
    assert check.returncode == 0 and json.loads(check.stdout) == {"fixed": True}


def test_unknown_bug_is_a_one_line_error_and_writes_nothing(state_dir, tmp_path):
    result = bugdrill(state_dir, "inject", "999", "--workspace", str(tmp_path / "ws"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "unknown bug" in result.stderr
    assert not (tmp_path / "ws").exists()


def test_non_empty_workspace_is_refused_and_left_alone(state_dir, tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("mine")
    result = bugdrill(state_dir, "inject", "1", "--workspace", str(workspace))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in workspace.iterdir()] == ["notes.txt"]


def test_codebase_without_the_expected_files_is_refused(state_dir, tmp_path):
    codebase = tmp_path / "not-a-codebase"
    codebase.mkdir()
    (codebase / "train.py").write_text("print('hi')\n")
    result = bugdrill(state_dir, "inject", "1", "--workspace", str(tmp_path / "ws"), "--codebase", str(codebase))
    assert result.returncode == 2 and "is not a recognised checkout" in result.stderr
    assert "picochat/gpt.py and scripts/base_train.py" in result.stderr  # what it looks for
    assert not (tmp_path / "ws").exists()


def test_out_of_range_variant_is_refused(state_dir, tmp_path):
    result = bugdrill(state_dir, "inject", "1", "--workspace", str(tmp_path / "ws"), "--variant", "99")
    assert result.returncode == 2 and "variants 1 to" in result.stderr


def test_commands_on_a_directory_bugdrill_did_not_make_fail_clearly(state_dir, tmp_path):
    for command in ("reveal", "restore", "check"):
        result = bugdrill(state_dir, command, "--workspace", str(tmp_path))
        assert result.returncode == 2 and "not a workspace bugdrill made" in result.stderr


def test_exported_patches_apply_to_a_pristine_copy(state_dir, tmp_path, picochat_dir):
    out = tmp_path / "patches"
    assert bugdrill(state_dir, "export-patches", "--split", "all", str(out)).returncode == 0
    patches = sorted(out.glob("*.patch"))
    assert len(patches) == sum(len(r.variants) for r in load_catalog().values())
    pristine = tmp_path / "pristine"  # outside any git repository: paths are relative to it
    shutil.copytree(picochat_dir, pristine, ignore=shutil.ignore_patterns("__pycache__", ".picochat"))
    for patch in patches:
        applied = subprocess.run(["git", "apply", "--check", "--numstat", str(patch)], cwd=pristine,
                                 capture_output=True, text=True)
        assert applied.returncode == 0, f"{patch.name}: {applied.stderr}"
        assert len(applied.stdout.splitlines()) == 1, f"{patch.name} should touch one file"


def test_exported_patches_are_public_variants_only_by_default(state_dir, tmp_path):
    out = tmp_path / "patches"
    assert bugdrill(state_dir, "export-patches", str(out)).returncode == 0
    exported = {p.name for p in out.glob("*.patch")}
    catalog = load_catalog().values()
    public = {f"{r.id:02d}-{r.slug}--{v.name}.patch" for r in catalog for _, v in variants_in(r, "public")}
    held_out = {f"{r.id:02d}-{r.slug}--{v.name}.patch" for r in catalog for _, v in variants_in(r, "held_out")}
    assert exported == public and held_out and not exported & held_out
