"""
Shared fixtures for the picochat behavioural tests.

The tests run against any copy of the picochat codebase: set PICOCHAT_DIR to the directory
that holds the `picochat/` package (default: the built-in template in this repository).
That directory is put at the front of sys.path when this file is imported, before any test
module imports `picochat`.
"""

import os
import sys
from pathlib import Path

import pytest

DEFAULT_PICOCHAT_DIR = Path(__file__).resolve().parents[1] / "sandbox" / "templates" / "picochat"


def _resolve_picochat_dir():
    raw = os.environ.get("PICOCHAT_DIR")
    path = Path(raw).expanduser().resolve() if raw else DEFAULT_PICOCHAT_DIR
    if not (path / "picochat" / "gpt.py").is_file():
        source = f"PICOCHAT_DIR={raw!r}" if raw else "the built-in template"
        raise pytest.UsageError(
            f"picochat codebase not found: {path / 'picochat' / 'gpt.py'} does not exist ({source}). "
            "Set PICOCHAT_DIR to the directory that contains the picochat/ package."
        )
    return path


PICOCHAT_DIR = _resolve_picochat_dir()

# a `picochat` imported earlier from somewhere else would silently shadow the copy under test
_already = sys.modules.get("picochat")
if _already is not None:
    _origin = Path(getattr(_already, "__file__", "") or "").resolve()
    if PICOCHAT_DIR not in _origin.parents:
        raise pytest.UsageError(f"picochat was already imported from {_origin}, not from {PICOCHAT_DIR}")

if str(PICOCHAT_DIR) not in sys.path:
    sys.path.insert(0, str(PICOCHAT_DIR))


@pytest.fixture(scope="session")
def picochat_dir():
    return PICOCHAT_DIR


@pytest.fixture(scope="session", autouse=True)
def shared_baselines(tmp_path_factory):
    """One baseline cache for the whole session, its xdist workers and every state directory a
    test makes (sandbox/baselines.py, BUGDRILL_BASELINE_CACHE): a pristine run of a request is
    made once, not once per test. Servers and runs started as subprocesses inherit it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ["BUGDRILL_BASELINE_CACHE"] = str(root / "baseline-cache")
    return root / "baseline-cache"


@pytest.fixture(scope="session", autouse=True)
def no_ledgers(tmp_path_factory):
    """Pools under test start empty: the project's ledgers (bug_synth/ledger.py) would fill every
    test's pool of the built-in codebase with what its builds measured. tests/test_synth_ledger.py
    names a folder of its own."""
    empty = tmp_path_factory.mktemp("no-ledgers")
    os.environ["BUGDRILL_SYNTH_LEDGERS"] = str(empty)
    return empty


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def tiny_config():
    from picochat.gpt import GPTConfig

    return GPTConfig(
        vocab_size=128,
        sequence_len=32,
        n_layer=2,
        n_head=4,
        n_embd=64,
        dropout=0.0,
        pad_id=0,
        attn_impl="explicit",
    )


@pytest.fixture
def tiny_model(tiny_config):
    import torch

    from picochat.gpt import GPT

    torch.manual_seed(0)
    return GPT(tiny_config).eval()


@pytest.fixture
def server_state(tmp_path, monkeypatch):
    """A state directory of its own for a server under test; torch subprocesses on one thread."""
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "state"


# the longest files start first, so that two workers end together instead of one finishing a
# long file alone: pytest-xdist's loadfile hands out files in collection order when told not to
# reorder them by their number of tests (--no-loadscope-reorder, README's test command). Ordered
# by the time each file took in a whole run on the 2-core machine (2026-12-03; test_synth_pool.py grew to
# a 20-mutant pool with its traced runs since).
LONGEST_FIRST = ("test_synth_pool.py", "test_catalogue.py", "test_eval.py", "test_training_runs.py",
                 "test_server_roles.py", "test_cli_workspaces.py", "test_eval_command_agent.py", "test_symptoms.py",
                 "test_synth_interviews.py", "test_validation_subset.py", "test_server_training.py",
                 "test_inspector_cli.py", "test_selfcheck.py", "test_reference_agent.py", "test_server_transports.py",
                 "test_probe.py", "test_fixed_by_behaviour.py", "test_synth_reach.py", "test_jail.py", "test_evidence.py",
                 "test_check_batches.py", "test_demo.py", "test_foreign_codebase.py", "test_runner.py",
                 "test_progress_notifications.py", "test_nonroot_server.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
