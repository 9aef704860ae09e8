"""Baselines: the pristine codebase run with the same scenario, flags and seed, cached.

The key holds everything that changes the numbers: the codebase's content, the request
(scenario, steps, flags, seed, threads), the torch version and the machine's accelerator.
A band of other seeds says how far two pristine runs differ by chance (plots draw it).

BUGDRILL_BASELINE_CACHE names a directory where finished baselines are kept for every state
directory on this machine that names it too (eval shards, a test session): a state directory
without the baseline copies it from there (its training record and run directories) instead of
running it again. Only finished baselines of pristine code go there, under the same key.
"""

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path

from bug_catalog.teardown import ATTEMPTS, TEARDOWN_ABORT
from sandbox.codebase import copy_codebase
from sandbox import runner
from sandbox.runner import RunError
from sandbox.state import state_dir
from sandbox.teardown_retry import again_after_teardown_abort, failed_in_teardown, stderr_texts
from sandbox.training import Training, TrainingRequest, load_training, train, trainings_dir
from sandbox.workspace import read_codebase

BAND_SEEDS = (1042, 2042)


def codebase_digest(codebase):
    digest = hashlib.sha256()
    for path, text in read_codebase(codebase).items():
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def machine_signature():
    import torch  # only for its version and whether an accelerator is there

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"torch": torch.__version__, "device": device}


def baseline_key(codebase, request: TrainingRequest):
    material = {"codebase": codebase_digest(codebase), "request": request.model_dump(exclude={"wall_s", "memory_mb"}),
                **machine_signature()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def locked(path):
    """One process builds a given baseline; the others wait and then read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def baseline(codebase, request: TrainingRequest, on_progress=None) -> Training:
    """The cached pristine training for this request, run now if there is none yet."""
    return cached(baseline_key(codebase, request), codebase, request,
                  lambda workspace: train(workspace, request, on_progress=on_progress, label="baseline",
                                            trusted=True))


class BaselineFailed(RunError):
    """The pristine code's run did not finish: nothing to compare with, and nothing was cached."""

    def __init__(self, training):
        self.training = training
        if failed_in_teardown(training):
            said = f" (a rank aborted in gloo's teardown ({TEARDOWN_ABORT}) in each of its {ATTEMPTS} runs)"
        else:
            last = _last_stderr_line(training)
            said = f" (its stderr ends: {last})" if last else ""
        super().__init__(f"the baseline (the pristine code's run of the same request) did not finish: "
                         f"{training.state}, {training.message or 'no message'}{said}"
                         "; nothing was cached, so the next request runs it again")


def _last_stderr_line(training):
    lines = [line.strip() for text in stderr_texts(training, 40) for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def cached(key, codebase, request, run):
    """The finished training stored under `key`, else run(workspace) on a fresh copy of the codebase,
    stored only if it finished: a failed, stopped or interrupted baseline raises BaselineFailed and
    the next request runs it again."""
    root = state_dir() / "baselines"
    entry = root / f"{key}.json"
    shared = shared_cache()
    with locked(root / f"{key}.lock"), (locked(shared / f"{key}.lock") if shared else nullcontext()):
        stored = stored_training(entry)
        if stored is not None:
            return stored
        if shared and (shared / f"{key}.json").exists():
            imported = import_baseline(shared, key, entry)
            if imported is not None:
                return imported
        workspace = root / key / "workspace"

        def fresh_run():
            shutil.rmtree(workspace, ignore_errors=True)
            copy_codebase(codebase, workspace)
            return run(workspace)

        training = again_after_teardown_abort(fresh_run)
        if training.state != "finished":
            raise BaselineFailed(training)
        entry.write_text(json.dumps({"training": training.id, "request": request.model_dump()}))
        if shared:
            export_baseline(shared, key, entry, training)
        return training


def shared_cache():
    value = os.environ.get("BUGDRILL_BASELINE_CACHE")
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_baseline(shared, key, entry, training):
    """The finished baseline's entry, training record and run directories, copied to the cache."""
    folder = shared / key
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "runs").mkdir(parents=True)
    shutil.copy2(trainings_dir() / f"{training.id}.json", folder / "training.json")
    for run_id in training.stages:
        shutil.copytree(runner.run_dir(run_id), folder / "runs" / run_id, ignore=shutil.ignore_patterns("*.lock"))
    shutil.copy2(entry, shared / f"{key}.json")  # last: an entry there means the rest is there


def import_baseline(shared, key, entry):
    """The cached baseline copied into this state directory, or None if the copy is unusable."""
    folder = shared / key
    try:
        training = Training.model_validate_json((folder / "training.json").read_text())
        for run_id in training.stages:
            destination = state_dir() / "runs" / run_id
            if not destination.exists():
                shutil.copytree(folder / "runs" / run_id, destination)
        shutil.copy2(folder / "training.json", trainings_dir() / f"{training.id}.json")
    except (OSError, ValueError):
        return None
    shutil.copy2(shared / f"{key}.json", entry)
    return stored_training(entry)


def stored_training(entry):
    """The cached training, if there is one and it finished (caches written before this rule may
    hold a failed one: it is dropped)."""
    if not entry.exists():
        return None
    try:
        training = load_training(json.loads(entry.read_text())["training"])
    except (RunError, ValueError, KeyError):
        training = None
    if training is None or training.state != "finished":
        entry.unlink(missing_ok=True)
        return None
    return training


def band(codebase, request: TrainingRequest, on_progress=None) -> list[Training]:
    """Pristine trainings of the same request with other seeds."""
    return [baseline(codebase, request.model_copy(update={"seed": seed}), on_progress) for seed in BAND_SEEDS]
