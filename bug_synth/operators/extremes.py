"""Extremes swapped: the minimum taken where the maximum is meant and the reverse, as Python's
max(a, b), torch's and a tensor's max/maximum/amax/argmax/clamp_max, or a clamp's min= and max=
bounds traded."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, is_method_call
from bug_synth.operators.source import Site

SWAP = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum", "amax": "amin", "amin": "amax",
        "argmax": "argmin", "argmin": "argmax", "clamp_max": "clamp_min", "clamp_min": "clamp_max"}
WORDS = {"max": "maximum", "min": "minimum", "maximum": "maximum", "minimum": "minimum", "amax": "maximum",
         "amin": "minimum", "argmax": "index of the maximum", "argmin": "index of the minimum",
         "clamp_max": "upper bound", "clamp_min": "lower bound"}
# np.max and torch.max exist; math has no max, F and nn no max at all
EXTREME_RECEIVERS = frozenset({"torch", "np", "numpy"})
CLAMPS = frozenset({"clamp", "clamp_", "clip", "clip_"})
BOUNDS = {"min": "a lower bound", "max": "an upper bound"}
EXTREME_TERMS = (("min", "smallest", "lowest", "least"), ("max", "largest", "highest", "greatest"))


def _swapped_callee(call):
    """The name a call to an extreme should call instead, or None: max(a, b) needs two arguments
    (max(xs) of one iterable is a different question), torch.max or x.max() a tensor."""
    name = callee_name(call)
    if name not in SWAP:
        return None
    if isinstance(call.func, cst.Name):
        return SWAP[name] if name in ("max", "min") and len(call.args) >= 2 else None
    if is_method_call(call) or dotted(call.func.value) in EXTREME_RECEIVERS:
        return SWAP[name]
    return None


def _bound_keywords(call):
    return [arg for arg in call.args if arg.keyword is not None and arg.keyword.value in BOUNDS]


@family
class ExtremeSwapped(Family):
    name = "extreme-swapped"
    theme = "extremes"
    description = "max <-> min, maximum/amax/argmax <-> minimum/amin/argmin, clamp(max=...) <-> clamp(min=...)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            new = _swapped_callee(call)
            if new is not None:
                old = callee_name(call)
                func = cst.Name(new) if isinstance(call.func, cst.Name) else call.func.with_changes(attr=cst.Name(new))
                yield Site(
                    call, call.with_changes(func=func),
                    f"the {WORDS[new]} is used where the {WORDS[old]} is meant {source.where(call)}", EXTREME_TERMS)
            elif callee_name(call) in CLAMPS and isinstance(call.func, cst.Attribute) and _bound_keywords(call):
                yield self._clamp_site(source, call)

    @staticmethod
    def _clamp_site(source, call):
        bounds = _bound_keywords(call)
        args = [arg.with_changes(keyword=cst.Name(SWAP[arg.keyword.value])) if arg in bounds else arg
                for arg in call.args]
        if len(bounds) == 1:
            old = bounds[0].keyword.value
            value = source.code(bounds[0].value)
            wrong = f"sets {BOUNDS[SWAP[old]]} ({SWAP[old]}={value}) where {BOUNDS[old]} ({old}={value}) is meant"
        else:
            wrong = "has its lower and upper bounds traded"
        return Site(
            call, call.with_changes(args=args),
            f"the {callee_name(call).rstrip('_')} {wrong} {source.where(call)}",
            (("clamp", "clip", "bound", "cap", "limit"), ("min", "max", "lower", "upper", "floor", "ceiling")))
