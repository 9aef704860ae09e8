"""Planning an eval's episodes: which bugs (and variants) each blind episode holds.

An episode holds no bug (a control: the right answer is "nothing is wrong"), one, or two
(a compound episode: two bugs in different files whose checks judge each bug alone, see
sandbox/pairs.py). Variants come from one split of the catalogue (bug_catalog/split.py),
held-out by default. Everything is drawn from the eval's seed, so a plan is reproducible and
shards of one eval agree on it.

On another codebase's checkout only the variants that apply to that checkout are drawn, as
measured there (`bugdrill doctor --measure`: the check fits, the edit changes behaviour, and for
production debugging the default run shows it), and pairs are measured with that codebase's checks.
"""

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from bug_catalog.catalog import UnknownBug, get_bug
from bug_catalog.selection import matching
from bug_catalog.split import variants_in
from sandbox import applicability, codebases
from sandbox.pairs import compatible

KINDS = ("production_debugging", "code_review")
SOURCES = ("catalogue", "synth")
# one control episode for every this many bug episodes (at least one when controls are asked for)
BUG_EPISODES_PER_CONTROL = 5


class PlanError(ValueError):
    """Task parameters that name no episode, or name something that does not exist."""


@dataclass(frozen=True)
class Pick:
    bug: int | str  # a catalogue id, or a synthesized bug's id (source="synth")
    variant: int  # 1-based, as start_interview and the catalogue number them; 0 for a synthesized bug
    variant_name: str  # a synthesized bug's: its operator family


@dataclass(frozen=True)
class Episode:
    number: int
    kind: str
    seed: int
    picks: tuple[Pick, ...] = field(default_factory=tuple)

    @property
    def bugs_per_episode(self):
        return len(self.picks)


@dataclass(frozen=True)
class EvalCodebase:
    """What episodes are drawn for: the built-in codebase, or a checkout a codebase recognises."""
    name: str  # "builtin", or the checkout's absolute path
    source: Path
    codebase: codebases.Codebase

    @property
    def builtin(self):
        return self.name == "builtin"

    def variants(self, record, split, kind="production_debugging"):
        """[(number, variant)] of the record's variants in the split that this checkout can hold: on
        a checkout other than the built-in codebase, as measured there for this kind of episode
        (sandbox/applicability.py, cached: a plan measures each variant once per checkout)."""
        chosen = variants_in(record, split)
        if not chosen:
            return chosen
        applies = {variant.name for variant in self.codebase.variants(self.source, record)}
        chosen = [(number, variant) for number, variant in chosen if variant.name in applies]
        if not applicability.measured_here(self.codebase):
            return chosen
        run = kind == "production_debugging"
        try:
            return [(number, variant) for number, variant in chosen
                    if applicability.offered(applicability.measure(self.codebase, self.source, record, variant,
                                                                   run=run), run)]
        except applicability.MeasureError as error:
            raise PlanError(f"bug {record.id} could not be measured on this checkout: {error}") from None

    def injected(self, record, variant):
        """The (record, variant) as injected here: the codebase's own edit of the variant."""
        return (record, self.codebase.injected(record, variant))


def eval_codebase(codebase="builtin"):
    if codebase in (None, "builtin"):
        builtin = codebases.builtin()
        return EvalCodebase("builtin", builtin.source, builtin)
    path = Path(codebase).expanduser()
    found = codebases.recognise(path) if path.is_absolute() and path.is_dir() else None
    if found is None:
        raise PlanError(f"codebase must be 'builtin' or the absolute path of a checkout bugdrill recognises "
                        f"({codebases.looked_for()}), not {codebase!r}")
    return EvalCodebase(str(path), path, found)


def plan(bugs=None, category=None, priority=None, difficulty=None, kind="production_debugging",
         episodes_per_bug=1, bugs_per_episode=(1,), seed=0, split="held_out", codebase="builtin"):
    """The episodes of an eval, numbered from 1, in a fixed order."""
    if kind not in KINDS:
        raise PlanError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if episodes_per_bug < 1:
        raise PlanError("episodes_per_bug must be at least 1")
    counts = _as_counts(bugs_per_episode)
    target = eval_codebase(codebase)
    choices = _pool(bugs, category, priority, difficulty, kind, split, target)
    rng = random.Random(f"plan:{seed}")
    drafts = []
    for count in counts:
        if count == 0:
            controls = max(1, math.ceil(len(choices) * episodes_per_bug / BUG_EPISODES_PER_CONTROL))
            drafts += [() for _ in range(controls)]
        for record, variants in choices if count else ():
            for _ in range(episodes_per_bug):
                first = (record, rng.choice(variants))
                drafts.append((first,) if count == 1 else (first, _partner(first, choices, target, rng)))
    return [Episode(number, kind, rng.randrange(2**31), tuple(Pick(r.id, n, v.name) for r, (n, v) in picks))
            for number, picks in enumerate(drafts, 1)]


def _as_counts(bugs_per_episode):
    counts = [bugs_per_episode] if isinstance(bugs_per_episode, int) else list(bugs_per_episode)
    if not counts or any(c not in (0, 1, 2) for c in counts):
        raise PlanError(f"bugs_per_episode must be 0, 1 or 2 (or a list of them), not {bugs_per_episode!r}")
    return sorted(set(counts))


def _pool(bugs, category, priority, difficulty, kind, split, target):
    """[(record, [(number, variant)] it may be drawn with)] of the records the eval draws from, by id."""
    if bugs:
        names = str(bugs).split(",") if isinstance(bugs, (int, str)) else [str(b) for b in bugs]
        try:
            records = [get_bug(name.strip()) for name in names]
        except UnknownBug as error:
            raise PlanError(str(error)) from None
        chosen = {r.id for r in records}
        records = [r for r in matching(category, priority, difficulty) if r.id in chosen]
    else:
        records = matching(category, priority, difficulty)
    records = sorted((r for r in records if kind in r.interview_types), key=lambda r: r.id)
    pool = [(r, found) for r in records if (found := target.variants(r, split, kind))]
    if not pool and (bugs or category or priority or difficulty or not target.builtin):
        where = "; `bugdrill bugs` lists the catalogue" if target.builtin else \
            f" on this {target.codebase.name} checkout (`bugdrill doctor --codebase` lists what applies)"
        raise PlanError(f"no bug matches those filters for a {kind} eval with {split} variants{where}")
    return pool


def _partner(first, choices, target, rng):
    """A second (record, (number, variant)) whose check and first's judge each bug alone."""
    record, (_, variant) = first
    others = [(r, variants) for r, variants in choices if r.id != record.id]
    rng.shuffle(others)
    for other, variants in others:
        second = (other, rng.choice(variants))
        if compatible(target.source, target.injected(record, variant), target.injected(other, second[1][1]))[0]:
            return second
    raise PlanError(f"no bug among those chosen can share an episode with bug {record.id} (different file, "
                    "each check passing with only the other bug present); choose more bugs")


def plan_synth(kind="production_debugging", synth_bugs=10, bugs_per_episode=(1,), seed=0, codebase="builtin",
               difficulty=None):
    """Episodes drawn from the synthesized-bug pool of the codebase (bug_synth): `synth_bugs` bug
    episodes of each count asked for, a compound one pairing bugs of different files, and controls
    as for the catalogue. Raises PlanError when the pool cannot give them."""
    from bug_synth.pool import Pool

    if kind not in KINDS:
        raise PlanError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(synth_bugs, int) or synth_bugs < 1:
        raise PlanError(f"synth_bugs must be a whole number of at least 1, not {synth_bugs!r}")
    counts = _as_counts(bugs_per_episode)
    target = eval_codebase(codebase)
    bugs = sorted((b for b in Pool(target.codebase, target.source).kept()
                   if difficulty is None or b.difficulty == difficulty), key=lambda b: b.id)
    if len(bugs) < synth_bugs:
        raise PlanError(f"the synthesized-bug pool of this {target.codebase.name} checkout holds {len(bugs)} bugs"
                        f"{f' of difficulty {difficulty}' if difficulty else ''}, fewer than synth_bugs={synth_bugs}: "
                        "build more with `bugdrill synth`")
    rng = random.Random(f"plan-synth:{seed}")
    drafts = []
    for count in counts:
        if count == 0:
            drafts += [()] * max(1, math.ceil(synth_bugs / BUG_EPISODES_PER_CONTROL))
            continue
        for first in rng.sample(bugs, synth_bugs):
            if count == 1:
                drafts.append((first,))
                continue
            others = [b for b in bugs if b.file != first.file]
            if not others:
                raise PlanError("a compound episode needs synthesized bugs in two different files; the pool has "
                                "bugs in one file only")
            drafts.append((first, rng.choice(others)))
    return [Episode(number, kind, rng.randrange(2**31), tuple(Pick(b.id, 0, b.family) for b in picks))
            for number, picks in enumerate(drafts, 1)]
