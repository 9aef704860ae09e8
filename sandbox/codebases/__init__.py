"""Codebases as plugins: what bugdrill needs to know of a training codebase, in one protocol.

A codebase is one object (a subclass of `Codebase`) in one module: this folder's modules, and
any module named in BUGDRILL_CODEBASES (comma-separated import paths or .py file paths, each
defining `CODEBASE`; sandbox/codebases/script.py does most of the work for a codebase trained
by one script).
No other layer compares a codebase's name: the server, the evals and the sandbox take the object
this module hands them (`recognise` for a checkout, `of_key` for an answer key) and ask it.

What the protocol covers, in the order a run meets it:

* recognising a checkout (`recognises`, from a few marker files, before anything is read);
* the files a blind workspace holds (`workspace_name`), where a code review's window may fall
  (`review_files`) and which files synthesized bugs may change (`mutable_files`);
* runs: the scenarios, the request an interview starts from (`default_request`), a request made
  from a candidate's scenario, steps, flags and seed and validated (`request`: the flags it
  accepts and their ranges live in the codebase's module), the commands a request runs
  (`commands`), the run itself and its cached pristine baseline (`train`, `baseline`: they make
  the codebase's data offline themselves), other-seed pristine runs (`band`), and the short runs
  a fix is judged by (`behaviour_requests`);
* reading its log lines into the common telemetry (`parse_log`);
* the catalogue: which variants apply to a checkout and why the others do not (`applicability`,
  the doctor's table), the codebase's own edit of a variant (`injected`), its behavioural checks
  (`checks`, `check_for`), and what runs showed here (`symptom_here`). The static table only
  finds each edit's construct; for a codebase other than the built-in one, a variant an
  interview draws (`applicable_pick`) is then measured on the checkout (sandbox/applicability.py:
  the edit changes behaviour, its check fits the checkout, and for production debugging its
  default run shows a symptom), and `bugdrill doctor --measure` measures them all.
"""

import importlib
import importlib.util
import os
import random
import sys
from pathlib import Path

from sandbox.logparse import parse_log

BUILT_IN = ("sandbox.codebases.picochat", "sandbox.codebases.nanochat")


class CodebaseError(ValueError):
    """A request or a checkout this codebase cannot take; the message says why and what it can."""


class Codebase:
    name = ""  # how answer keys, tables and statements name it
    what = ""  # the statement's words for it: "a GPT training codebase (...)"
    looks_for = ""  # the marker files `recognises` checks, for a message that says why not
    scenarios = ("base",)
    source = None  # a codebase that ships with bugdrill: its directory ("builtin" names it)
    data_env = None  # the environment variable that tells its scripts where their data and outputs go
    build_outputs = ()  # names of directories its scripts make inside a checkout: never copied

    def recognises(self, path):
        """Whether the directory `path` is a checkout of this codebase (marker files only)."""
        raise NotImplementedError

    def workspace_name(self, source):
        return Path(source).name

    def review_files(self):
        """Files (relative paths) where a code review's window may fall when no bug sets it."""
        return set()

    def mutable_files(self, source):
        """Files (relative paths) the bug synthesizer (bug_synth) may mutate: the checkout's Python
        files but its tests, set-up and build outputs."""
        from sandbox.workspace import read_codebase

        return {path for path in read_codebase(source) if path.endswith(".py") and not _test_or_setup(path)}

    # runs

    def default_request(self, key):
        raise NotImplementedError

    def request(self, base, scenario=None, steps=None, args=None, seed=None):
        """`base` with the candidate's changes, validated; raises CodebaseError."""
        raise NotImplementedError

    def commands(self, request):
        """The command lines a request runs, as a person would type them."""
        raise NotImplementedError

    def train(self, workspace, request, on_progress=None, label="", training_id=None, trusted=False):
        raise NotImplementedError

    def baseline(self, source, request, on_progress=None):
        raise NotImplementedError

    def band(self, source, request):
        """Pristine runs of the request with other seeds, or None where the seed is not the caller's."""
        return None

    def behaviour_requests(self, key):
        """The short runs a fix must match against the same-seed pristine runs."""
        raise NotImplementedError

    def parse_log(self, text):
        """The script's printed lines as the common ParsedLog."""
        return parse_log(text)

    # the catalogue

    def applicability(self, source, records=None):
        """Rows {bug, slug, title, variant, applies, where, function, reason} for `records`
        (every catalogue record by default), about this very checkout. By default none applies:
        the catalogue's edits are written for codebases that have them."""
        from bug_catalog.catalog import load_catalog

        chosen = load_catalog().values() if records is None else records
        return [{"bug": r.id, "slug": r.slug, "title": r.title, "variant": v.name, "applies": False, "where": "",
                 "function": "", "reason": f"bugdrill has no edit of this bug for {self.name}"}
                for r in sorted(chosen, key=lambda r: r.id) for v in r.variants]

    def variants(self, source, record):
        """The record's catalogue variants that apply to the checkout, in catalogue order
        (`injected` turns one into this codebase's own edit)."""
        return []

    def injected(self, record, variant):
        """The variant as this codebase's own edit (the catalogue's, on the built-in codebase)."""
        return variant

    def checks(self):
        """The names of every behavioural check of this codebase."""
        return set()

    def check_for(self, record):
        return record.check

    def symptom_here(self, bug_id, source=None, variant=None):
        """What runs showed on this codebase for the bug (on the checkout `source`, for `variant`,
        where they were measured there), where the catalogue's symptom (measured on the built-in
        codebase) does not hold; "" where it does."""
        return ""

    def device_checks(self, checkout, device):
        """The self-check's rows for a checkout on a device (`bugdrill selfcheck --codebase`):
        [(name, estimated seconds, run(seconds left) -> {check, ran, seconds, expected, shown,
        verdict})]."""
        return []


def _test_or_setup(path):
    parts = path.split("/")
    return (parts[0] in ("tests", "test", "dev") or parts[-1].startswith("test_") or parts[-1] in
            ("setup.py", "conftest.py"))


def registered():
    """Every codebase: the built-in ones, then those BUGDRILL_CODEBASES names."""
    extra = [m.strip() for m in os.environ.get("BUGDRILL_CODEBASES", "").split(",") if m.strip()]
    found = []
    for module_name in (*BUILT_IN, *extra):
        try:
            found.append(_load(module_name).CODEBASE)
        except (ImportError, AttributeError, OSError) as error:
            raise CodebaseError(f"codebase module {module_name!r} cannot be loaded: {error}") from None
    return found


def _load(module):
    """An import path, or the path of a .py file (loaded once, under a name of its own)."""
    if not module.endswith(".py"):
        return importlib.import_module(module)
    name = "bugdrill_codebase_" + Path(module).stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, module)
        if spec is None:
            raise ImportError(f"no module at {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def named(name):
    for codebase in registered():
        if codebase.name == name:
            return codebase
    raise CodebaseError(f"no codebase is named {name!r}; known: {', '.join(c.name for c in registered())}")


def builtin():
    """The codebase bugdrill ships as its practice codebase ("builtin")."""
    return next(c for c in registered() if c.source is not None)


def recognise(path):
    """The codebase whose checkout `path` is, or None."""
    return next((c for c in registered() if c.recognises(Path(path))), None)


def looked_for():
    """What each codebase's checkout is recognised by: for a message that says why not."""
    return "; ".join(f"{c.name}: {c.looks_for}" for c in registered())


def of_key(key):
    """The codebase an answer key (or an interview row) was made on. Keys name it under
    "codebase_kind"; older keys hold only "codebase": "builtin", a codebase's name, or a path
    to a copy of the built-in codebase."""
    kind = key.get("codebase_kind")
    if kind:
        return named(kind)
    names = {c.name for c in registered()}
    return named(key.get("codebase")) if key.get("codebase") in names else builtin()


def source_of(key):
    """The pristine directory an answer key's workspace was copied from."""
    return Path(key["codebase_path"]) if key.get("codebase", "builtin") != "builtin" else of_key(key).source


def applicable_pick(codebase, source, record, variant, drawn, seed, run=False):
    """The (record, variant) to inject into a checkout: the catalogue's own pick where every
    variant of the bug applies there; else the variant asked for if it applies, or (`drawn`) one
    drawn with the seed among those that do; otherwise CodebaseError with the table's reason.

    On a codebase other than the built-in one (whose validation matrix is its measurement) the
    pick is then measured on the checkout (sandbox/applicability.py, cached): a variant whose edit
    changes only layout, or whose check does not tell it from the pristine code there, is refused
    with the measured reason, and so, with `run` (production debugging), is one whose default run
    shows no symptom; a drawn variant gives way to the next that applies, in an order the seed sets."""
    fits = codebase.variants(source, record)
    if len(fits) == len(record.variants):
        candidates = [variant, *(v for v in record.variants if v.name != variant.name)] if drawn else [variant]
    elif drawn and fits:
        first = random.Random(seed).choice(fits)
        candidates = [first, *(v for v in fits if v.name != first.name)]
    elif any(v.name == variant.name for v in fits):
        candidates = [variant]
    else:
        rows = codebase.applicability(source, [record])  # only to say why not
        reasons = dict.fromkeys(row["reason"] for row in rows if drawn or row["variant"] == variant.name)
        raise CodebaseError(f"bug {record.id} ({record.slug}){'' if drawn else f' variant {variant.name}'} does not "
                            f"apply to this {codebase.name} checkout: {'; '.join(reasons)}")
    from sandbox import applicability

    if not applicability.measured_here(codebase):
        return record, candidates[0]
    return record, _measured_pick(codebase, source, record, candidates, drawn, run)


def _measured_pick(codebase, source, record, candidates, drawn, run):
    """The first candidate the measurement offers (for production debugging with `run`), else
    CodebaseError with each candidate's measured reason."""
    from sandbox import applicability

    rows = []
    for candidate in candidates:
        try:
            row = applicability.measure(codebase, source, record, candidate, run=run)
        except applicability.MeasureError as error:
            raise CodebaseError(f"bug {record.id} ({record.slug}) could not be measured on this {codebase.name} "
                                f"checkout: {error}") from None
        if applicability.offered(row, run):
            return candidate
        rows.append(row)
    reasons = [f"{row['variant']}: {row['reason']}" for row in rows] if len(rows) > 1 else [rows[0]["reason"]]
    which = "" if drawn else f" variant {candidates[0].name}"
    purpose = " for production debugging" if all(row["applies"] for row in rows) else ""  # code review only
    raise CodebaseError(f"bug {record.id} ({record.slug}){which} does not apply to this {codebase.name} "
                        f"checkout{purpose} (measured there): {'; '.join(reasons)}")
