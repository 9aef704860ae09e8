"""Guards removed: an early-return branch for a special case, an assert that checks an input, a
min()/max()/clamp() that bounds a value."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, float_value, is_method_call, names_in, positional
from bug_synth.operators.source import Site

MISSING_TERMS = ("missing", "removed", "dropped", "never", "no longer", "without", "not handled", "forgot")
EXITS = (cst.Return, cst.Raise, cst.Continue, cst.Break)
CLAMPS = frozenset({"clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_max"})


@family
class GuardDropped(Family):
    name = "guard-dropped"
    theme = "guards"
    description = "an early exit for a special case is missing: if temperature == 0: return argmax(...)"

    def sites(self, source):
        for branch in source.nodes(cst.If):
            body = branch.body.body if isinstance(branch.body, cst.IndentedBlock) else ()
            if branch.orelse is not None or len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
                continue
            if len(body[0].body) != 1 or not isinstance(body[0].body[0], EXITS):
                continue
            yield Site(
                branch, None,
                f"the special case `if {source.code(branch.test)}: {source.code(body[0])}` is missing "
                f"{source.where(branch)}, so that case falls through to the code below",
                (names_in(branch.test, limit=3) + ("guard", "special case", "check", "branch", "condition"),
                 MISSING_TERMS + ("falls through", "early return")))


@family
class CheckDropped(Family):
    name = "check-dropped"
    theme = "guards"
    description = "an assert that checks its input is missing"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            if len(line.body) != 1 or not isinstance(line.body[0], cst.Assert):
                continue
            test = line.body[0].test
            yield Site(
                line, None,
                f"the check `assert {source.code(test)}` is missing {source.where(line)}, so input that breaks it "
                f"goes on silently",
                (("assert", "check", "validat", "guard") + names_in(test, limit=3),
                 MISSING_TERMS + ("silent", "unchecked")))


@family
class ClampDropped(Family):
    name = "clamp-dropped"
    theme = "guards"
    description = "a bound is missing: min(k, size) -> k, x.clamp(max=1.0) -> x"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name, args = callee_name(call), positional(call)
            if name in ("min", "max") and isinstance(call.func, cst.Name) and len(args) == 2 and len(call.args) == 2:
                literal = [float_value(a.value) is not None for a in args]
                if all(literal):
                    continue
                kept = args[1].value if literal[0] else args[0].value
            elif name in CLAMPS and isinstance(call.func, cst.Attribute):
                if is_method_call(call):
                    kept = call.func.value
                elif args:
                    kept = args[0].value
                else:
                    continue
            else:
                continue
            yield Site(
                call, kept,
                f"the bound {source.code(call)} is missing {source.where(call)}: {source.code(kept)} is used as it is",
                (("clamp", "clip", "bound", "min(", "max(", "limit", "cap", "cutoff"),
                 MISSING_TERMS + ("unclamped", "unbounded", "exceed", "larger than", "too large", "too small")))
