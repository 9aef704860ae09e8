"""karpathy/nanochat, a checkout the interviewer names: its own scripts trained offline
(runs.py: our data in its layout, its tokenizer, base_train under the runner), the catalogue's
bugs as its own edits and checks (bug_catalog/targets/nanochat.py, loaded only when asked: it
imports torch and libcst), and the table of what applies to this very checkout."""

from pathlib import Path

from sandbox.codebases import Codebase, CodebaseError

MARKERS = ("nanochat/gpt.py", "nanochat/dataset.py", "scripts/base_train.py", "scripts/tok_train.py")
# what a run of scripts/base_train.py executes (the only script bugdrill runs): synthesized bugs go here
TRAINED = ("scripts/base_train.py", "nanochat/gpt.py", "nanochat/optim.py", "nanochat/dataloader.py",
           "nanochat/common.py", "nanochat/flash_attention.py", "nanochat/loss_eval.py", "nanochat/engine.py",
           "nanochat/checkpoint_manager.py")
PREFIX = "nanochat/"  # its edits and checks are registered under this prefix


def _target():
    from bug_catalog.targets import nanochat

    return nanochat


class Nanochat(Codebase):
    name = "nanochat"
    what = "a nanochat checkout: model, optimizer, data loader, training and evaluation scripts"
    looks_for = ", ".join(MARKERS)
    scenarios = ()  # every run is its scripts/base_train.py

    def recognises(self, path):
        return all((path / marker).is_file() for marker in MARKERS)

    def mutable_files(self, source):
        return {path for path in TRAINED if (Path(source) / path).is_file()}

    def review_files(self):
        from bug_catalog.registry import EDITS

        _target()  # registers the edits
        return {edit.file for name, edit in EDITS.items() if name.startswith(PREFIX)}

    def default_request(self, key):
        from sandbox.codebases.nanochat.runs import NanochatRequest

        return NanochatRequest()

    def request(self, base, scenario=None, steps=None, args=None, seed=None):
        from sandbox.codebases.nanochat.runs import check_request
        from sandbox.scenarios import ScenarioError

        if scenario is not None or seed is not None:
            raise CodebaseError("this interview's codebase is nanochat: every run is its scripts/base_train.py, "
                                "with no scenarios and its own seed; pass steps and args (base_train flags, "
                                "e.g. --matrix-lr=0.01)")
        update = {"steps": steps} if steps is not None else {}
        if args is not None:
            update["args"] = [*base.args, *args]
        request = base.model_copy(update=update)
        try:
            check_request(request)
        except ScenarioError as error:
            raise CodebaseError(str(error)) from None
        return request

    def commands(self, request):
        return ["python -m scripts.base_train " + " ".join(request.flags())]

    def train(self, workspace, request, on_progress=None, label="", training_id=None, trusted=False):
        from sandbox.codebases.nanochat import runs

        return runs.train(workspace, request, label=label or "nanochat", on_progress=on_progress,
                          training_id=training_id, trusted=trusted)

    def baseline(self, source, request, on_progress=None):
        from sandbox.codebases.nanochat import runs

        return runs.baseline(source, request, on_progress=on_progress)

    def behaviour_requests(self, key):
        from sandbox.codebases.nanochat.runs import NanochatRequest

        return [NanochatRequest(steps=30, eval_every=15)]

    def applicability(self, source, records=None):
        return _target().applicability(source, records)

    def variants(self, source, record):
        return _target().applicable_variants(source, record)

    def injected(self, record, variant):
        from bug_catalog.registry import EditError

        try:
            return _target().variant_for(record, variant)
        except EditError as error:
            raise CodebaseError(str(error)) from None

    def checks(self):
        from bug_catalog.registry import CHECKS

        _target()
        return {name for name in CHECKS if name.startswith(PREFIX)}

    def check_for(self, record):
        return PREFIX + record.check

    def symptom_here(self, bug_id, source=None, variant=None):
        """The symptom measured on the checkout `source` (sandbox/applicability.py's cache), else
        what runs on nanochat 92d63d4 showed, or that none were made."""
        from sandbox.applicability import measured_symptom

        measured = measured_symptom(self, source, bug_id, variant) if source is not None else ""
        return measured or _target().symptom_here(bug_id)

    def device_checks(self, checkout, device):
        from sandbox.codebases.nanochat.selfcheck import device_checks

        return device_checks(checkout, device)


CODEBASE = Nanochat()
