"""Whether a run of a workspace trains like the same-seed pristine run: the behaviour half of
"fixed". Compared from the outside, on what both runs logged: every training step's loss and every
validation's loss, stage by stage, and how each run ended.

The tolerance: same-seed pristine runs on one machine are bit-identical, so any gap comes from
the code. A fix written differently from the pristine text (`x / math.sqrt(d)` for `x * d**-0.5`,
a reordered sum) moves the loss by float rounding only, which over a short run stays orders of
magnitude below LOSS_RTOL (tests/test_fixed_by_behaviour.py writes such fixes); the bugs whose runs
show anything move it by far more.
"""

from dataclasses import dataclass

LOSS_RTOL = 2e-3  # relative, per logged loss
COMPARED = (("train", "loss"), ("evals", "val loss"))


@dataclass(frozen=True)
class Match:
    same: bool
    detail: str


def _curve(data, part, field):
    """{(stage, step): value} of one logged quantity."""
    records = getattr(data.log, part)
    return {(r.get("stage", 0), r["step"]): r[field] for r in records
            if isinstance(r.get(field), (int, float)) and "step" in r}


def runs_match(run, base, rtol=LOSS_RTOL) -> Match:
    """Match(same, detail): `run` against the pristine `base` (RunData of the same request)."""
    run_state, base_state = run.result.get("state"), base.result.get("state")
    if run_state != base_state:
        return Match(False, f"the run ended '{run_state}', the pristine run '{base_state}'")
    for part, field in COMPARED:
        mine, theirs = _curve(run, part, field), _curve(base, part, field)
        if set(mine) != set(theirs):
            return Match(False, f"the run logged {field} at {len(mine)} points, the pristine run at {len(theirs)}")
        for point in sorted(theirs):
            a, b = mine[point], theirs[point]
            if abs(a - b) > rtol * max(abs(b), 1e-12):
                stage, step = point
                return Match(False, f"{field} at step {step} (stage {stage + 1}) is {a:.6g}, the pristine run's {b:.6g}")
    return Match(True, "trains like the pristine code")
