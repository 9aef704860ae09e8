"""Planning an eval's episodes: which bugs (and variants) each blind episode holds.

An episode holds no bug (a control: the right answer is "nothing is wrong"), one, or two
(a compound episode: two bugs in different files whose checks judge each bug alone, see
sandbox/pairs.py). Variants come from one split of the catalogue (bug_catalog/split.py),
held-out by default. Everything is drawn from the eval's seed, so a plan is reproducible and
shards of one eval agree on it.
"""

import math
import random
from dataclasses import dataclass, field

from bug_catalog.catalog import UnknownBug, get_bug
from bug_catalog.selection import matching
from bug_catalog.split import variants_in
from sandbox.codebase import PICOCHAT_DIR
from sandbox.pairs import compatible

KINDS = ("production_debugging", "code_review")
# one control episode for every this many bug episodes (at least one when controls are asked for)
BUG_EPISODES_PER_CONTROL = 5


class PlanError(ValueError):
    """Task parameters that name no episode, or name something that does not exist."""


@dataclass(frozen=True)
class Pick:
    bug: int
    variant: int  # 1-based, as start_interview and the catalogue number them
    variant_name: str


@dataclass(frozen=True)
class Episode:
    number: int
    kind: str
    seed: int
    picks: tuple[Pick, ...] = field(default_factory=tuple)

    @property
    def bugs_per_episode(self):
        return len(self.picks)


def plan(bugs=None, category=None, priority=None, difficulty=None, kind="production_debugging",
         episodes_per_bug=1, bugs_per_episode=(1,), seed=0, split="held_out"):
    """The episodes of an eval, numbered from 1, in a fixed order."""
    if kind not in KINDS:
        raise PlanError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if episodes_per_bug < 1:
        raise PlanError("episodes_per_bug must be at least 1")
    counts = _as_counts(bugs_per_episode)
    pool = _pool(bugs, category, priority, difficulty, kind, split)
    rng = random.Random(f"plan:{seed}")
    drafts = []
    for count in counts:
        if count == 0:
            controls = max(1, math.ceil(len(pool) * episodes_per_bug / BUG_EPISODES_PER_CONTROL))
            drafts += [() for _ in range(controls)]
        for record in pool if count else ():
            for _ in range(episodes_per_bug):
                first = _pick(record, split, rng)
                drafts.append((first,) if count == 1 else (first, _partner(record, first, pool, split, rng)))
    return [Episode(number, kind, rng.randrange(2**31), tuple(Pick(r.id, n, v.name) for r, (n, v) in picks))
            for number, picks in enumerate(drafts, 1)]


def _as_counts(bugs_per_episode):
    counts = [bugs_per_episode] if isinstance(bugs_per_episode, int) else list(bugs_per_episode)
    if not counts or any(c not in (0, 1, 2) for c in counts):
        raise PlanError(f"bugs_per_episode must be 0, 1 or 2 (or a list of them), not {bugs_per_episode!r}")
    return sorted(set(counts))


def _pool(bugs, category, priority, difficulty, kind, split):
    """Catalogue records the eval draws from, by id."""
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
    pool = sorted((r for r in records if kind in r.interview_types and variants_in(r, split)), key=lambda r: r.id)
    if not pool and (bugs or category or priority or difficulty):
        raise PlanError(f"no bug matches those filters for a {kind} eval with {split} variants; "
                        "`bugdrill bugs` lists the catalogue")
    return pool


def _pick(record, split, rng):
    return record, rng.choice(variants_in(record, split))


def _partner(record, first, pool, split, rng):
    """A second (record, (number, variant)) whose check and first's judge each bug alone."""
    others = [r for r in pool if r.id != record.id]
    rng.shuffle(others)
    for other in others:
        second = _pick(other, split, rng)
        if compatible(PICOCHAT_DIR, (record, first[1][1]), (other, second[1][1]))[0]:
            return second
    raise PlanError(f"no bug among those chosen can share an episode with bug {record.id} (different file, "
                    "each check passing with only the other bug present); choose more bugs")
