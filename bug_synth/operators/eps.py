"""Epsilons: dropped from a denominator or root, added outside the root instead of inside, or a
value large enough to matter."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, float_value, names_in, number, positional
from bug_synth.operators.source import Site

EPS_LIMIT = 1e-3
EPS_TERMS = ("eps", "epsilon")
GUARDED = frozenset({"sqrt", "rsqrt", "log", "log2", "log10"})


def is_eps(node):
    """self.eps, eps, epsilon, or a literal no bigger than EPS_LIMIT."""
    name = dotted(node).rsplit(".", 1)[-1].lower()
    if "eps" in name:
        return True
    value = float_value(node)
    return value is not None and 0 < value <= EPS_LIMIT


def eps_sum(node):
    """(other, eps) for `other + eps` or `eps + other`, else None."""
    if not isinstance(node, cst.BinaryOperation) or not isinstance(node.operator, cst.Add):
        return None
    if is_eps(node.right):
        return node.left, node.right
    if is_eps(node.left):
        return node.right, node.left
    return None


@family
class EpsDropped(Family):
    name = "eps-dropped"
    theme = "eps"
    description = "an epsilon added for safety is gone: rsqrt(v + eps) -> rsqrt(v), n / (d + 1e-6) -> n / d"

    def sites(self, source):
        for node in source.nodes(cst.BinaryOperation):
            parts = eps_sum(node)
            if parts is None:
                continue
            other, eps = parts
            yield Site(
                node, other,
                f"the epsilon {source.code(eps)} is no longer added to {source.code(other)} {source.where(node)}, "
                f"so nothing keeps it away from zero",
                (EPS_TERMS, ("missing", "dropped", "without", "removed", "zero", "nan", "inf", "divi", "forgot",
                             "not added", "no longer")))


@family
class EpsOutside(Family):
    name = "eps-outside"
    theme = "eps"
    description = "an epsilon moved outside the root/log or denominator: rsqrt(v + eps) -> rsqrt(v) + eps"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            args = positional(call)
            if callee_name(call) not in GUARDED or len(args) != 1 or eps_sum(args[0].value) is None:
                continue
            other, eps = eps_sum(args[0].value)
            moved = cst.BinaryOperation(call.with_changes(args=[args[0].with_changes(value=other)]), cst.Add(), eps)
            yield Site(
                call, moved,
                f"the epsilon {source.code(eps)} is added outside {callee_name(call)}(...) instead of inside it "
                f"{source.where(call)}, so {callee_name(call)} of zero still blows up",
                (EPS_TERMS, ("outside", "inside", "after", "placement", "wrong place", "moved", callee_name(call))))
        for division in source.nodes(cst.BinaryOperation):
            if not isinstance(division.operator, cst.Divide) or eps_sum(division.right) is None:
                continue
            other, eps = eps_sum(division.right)
            moved = cst.BinaryOperation(division.with_changes(right=other.with_changes(lpar=(), rpar=())),
                                        cst.Add(), eps)
            yield Site(
                division, moved,
                f"the epsilon {source.code(eps)} is added after the division by {source.code(other)} instead of to "
                f"the denominator {source.where(division)}, so a zero denominator still divides by zero",
                (EPS_TERMS, ("outside", "denominator", "after", "placement", "wrong place", "moved", "divi")))


@family
class EpsSize(Family):
    name = "eps-size"
    theme = "eps"
    description = "an epsilon literal large enough to matter (1e-6 -> 1e-2)"

    def sites(self, source):
        for literal in source.nodes(cst.Float, cst.Integer):
            value = float_value(literal)
            if not is_eps(literal) or value is None:
                continue
            new = number(min(value * 1e4, 0.1))
            terms = names_in(source.parent(literal))
            yield Site(
                literal, new,
                f"the epsilon is {new.value} instead of {literal.value} {source.where(literal)}: large enough "
                f"to swamp the values it guards",
                (EPS_TERMS + terms, ("large", "big", "size", "magnitude", "1e-", "0.01", "0.1", "swamp", "dominat",
                                     "too ")))
