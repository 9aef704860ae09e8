"""picochat, bugdrill's built-in practice codebase (sandbox/templates/picochat): every catalogue
bug has its home here, its runs are the scenarios of sandbox/scenarios.py, and the catalogue's
symptoms were measured on it."""

import functools
import importlib.util
from pathlib import Path

from sandbox.codebases import Codebase, CodebaseError

# the scenario runs, baselines and the catalogue import this module's PICOCHAT_DIR: they are
# imported where a method needs them
PICOCHAT_DIR = Path(__file__).resolve().parents[1] / "templates" / "picochat"
# what a fix must not do to a short pristine-sized run: the same for every bug (no oracle)
SANITY_ARGS = ["--num_samples=0", "--eval_every=15"]
SANITY_STEPS = 30
MATCH_STEPS = 60  # a measured run cut to this many steps judges a fix: long enough to depart, short to run


def own_edit(name):
    """The catalogue's own edits carry no codebase prefix (a target's are `name/...`)."""
    return "/" not in name


class Picochat(Codebase):
    name = "picochat"
    what = "picochat: model, data pipeline, training and evaluation scripts"
    looks_for = "picochat/gpt.py and scripts/base_train.py"
    source = PICOCHAT_DIR
    data_env = "PICOCHAT_BASE_DIR"
    build_outputs = (".picochat",)  # where its scripts put data when PICOCHAT_BASE_DIR is unset

    @property
    def scenarios(self):
        from sandbox.scenarios import SCENARIOS

        return tuple(SCENARIOS)

    def recognises(self, path):
        return (path / "picochat" / "gpt.py").is_file() and (path / "scripts" / "base_train.py").is_file()

    def review_files(self):
        from bug_catalog.registry import EDITS

        return {edit.file for name, edit in EDITS.items() if own_edit(name)}

    def default_request(self, key):
        """The (first) injected bug's scenario with the scenario's own steps and flags (shared by
        several bugs, so the request does not name the bug); a plain base run with no bug."""
        from bug_catalog.catalog import load_catalog
        from sandbox.matrix import scenario_request
        from sandbox.training import TrainingRequest

        if not key["bugs"]:
            return TrainingRequest()
        record = load_catalog()[key["bugs"][0]["id"]]
        variant = next(v for v in record.variants if v.name == key["bugs"][0]["variant"])
        return scenario_request(record, variant)

    def request(self, base, scenario=None, steps=None, args=None, seed=None):
        from sandbox.scenarios import ScenarioError
        from sandbox.training import TrainingRequest, request_commands

        if scenario is not None and scenario != base.scenario:
            base = TrainingRequest(scenario=scenario)
        update = {k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None}
        if args is not None:
            update["args"] = [*base.args, *args]
        request = base.model_copy(update=update)
        try:
            request_commands(request)  # flags, paths, the step cap
        except ScenarioError as error:
            raise CodebaseError(str(error)) from None
        return request

    def commands(self, request):
        from sandbox.training import describe_request

        return describe_request(request)

    def train(self, workspace, request, on_progress=None, label="", training_id=None, trusted=False):
        from sandbox.training import train

        return train(workspace, request, on_progress=on_progress, label=label, training_id=training_id,
                     trusted=trusted)

    def baseline(self, source, request, on_progress=None):
        from sandbox import baselines

        return baselines.baseline(source, request, on_progress=on_progress)

    def band(self, source, request):
        from sandbox import baselines

        return baselines.band(source, request)

    def behaviour_requests(self, key):
        """The plain short run, and the run the catalogue measured for each injected bug, cut to
        MATCH_STEPS."""
        from bug_catalog.catalog import load_catalog
        from sandbox.matrix import request_for
        from sandbox.scenarios import get_scenario
        from sandbox.training import TrainingRequest

        requests = [TrainingRequest(scenario="base", steps=SANITY_STEPS, args=SANITY_ARGS)]
        catalog = load_catalog()
        for bug in key["bugs"]:
            record = catalog[bug["id"]]
            measured = request_for(record, next(v for v in record.variants if v.name == bug["variant"]))
            steps = min(measured.steps or get_scenario(measured.scenario).default_steps, MATCH_STEPS)
            measured = measured.model_copy(update={"steps": steps})
            if measured not in requests:
                requests.append(measured)
        return requests

    def applicability(self, source, records=None):
        from bug_catalog.catalog import load_catalog

        chosen = load_catalog().values() if records is None else records
        return [{"bug": r.id, "slug": r.slug, "title": r.title, "variant": v.name, "applies": True,
                 "where": r.file, "function": r.function, "reason": ""}
                for r in sorted(chosen, key=lambda r: r.id) for v in r.variants]

    def variants(self, source, record):
        return list(record.variants)

    def checks(self):
        from bug_catalog.catalog import load_catalog

        return {record.check for record in load_catalog().values()}

    @staticmethod
    def story_grammar():
        """The grammar of picochat's story corpus, read from the pristine template (never a
        workspace): offline data for any codebase, and a model-independent measure of samples."""
        return _story_grammar()


@functools.lru_cache(maxsize=1)
def _story_grammar():
    spec = importlib.util.spec_from_file_location("bugdrill_corpus_grammar", PICOCHAT_DIR / "picochat" / "dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CODEBASE = Picochat()
