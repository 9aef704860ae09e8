"""Constants: a scale, init std or rate off by an order of magnitude; an exponent's sign flipped
(** -0.5 -> ** 0.5, rsqrt <-> sqrt); a square root missing (1 / sqrt(d) -> 1 / d)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    callee_name, float_value, is_method_call, names_in, number, positional, receiver_name,
)
from bug_synth.operators.source import Site

EPS_LIMIT = 1e-3  # literals this small are epsilons: eps.py changes those
MAGNITUDE_TERMS = ("10x", "10 x", "ten times", "order of magnitude", "too large", "too small", "too big",
                   "tenth", "factor of 10", "x10", "/10", "larger", "smaller", "magnitude")
ROOTS = {"sqrt": "rsqrt", "rsqrt": "sqrt"}


def label(source, literal):
    """What the literal alone sets, for the cause: ("keyword", "std") for std=1.0 or a default,
    ("variable", "scale") for scale = 1.0, ("", "") when it is part of an expression."""
    parent = source.parent(literal)
    if isinstance(parent, cst.UnaryOperation):
        parent = source.parent(parent)
    if isinstance(parent, cst.Arg) and parent.keyword is not None:
        return "keyword", parent.keyword.value
    if isinstance(parent, cst.Param):
        return "keyword", parent.name.value
    if isinstance(parent, cst.Assign) and isinstance(parent.targets[0].target, cst.Name):
        return "variable", parent.targets[0].target.value
    return "", ""


def in_table(source, literal):
    """A literal among the elements of a tuple, list, set or dict: data (a table of peak FLOPs),
    not a constant of the computation."""
    parent = source.parent(literal)
    if isinstance(parent, cst.UnaryOperation):
        parent = source.parent(parent)
    return isinstance(parent, (cst.Element, cst.DictElement))


def in_exponent(source, literal):
    for node in (literal, *source.ancestors(literal)):
        parent = source.parent(node)
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Power) and parent.right is node:
            return True
        if not isinstance(parent, cst.UnaryOperation):
            return False
    return False


@family
class ConstantMagnitude(Family):
    name = "constant-magnitude"
    theme = "constants"
    description = "a float constant (init std, scale, lr, beta) ten times larger or smaller"

    def sites(self, source):
        for literal in source.nodes(cst.Float):
            value = float(literal.evaluated_value)
            if value < EPS_LIMIT or in_exponent(source, literal) or in_table(source, literal):
                continue
            kind, what = label(source, literal)
            context = source.code(source.parent(literal))
            for factor, wrong in ((10, "ten times too large"), (0.1, "ten times too small")):
                new = number(round(value * factor, 12))
                if kind == "keyword":
                    change = f"{what}={new.value} instead of {what}={literal.value}"
                elif kind == "variable":
                    change = f"{what} is {new.value} instead of {literal.value}"
                else:
                    change = f"the constant {literal.value} in {context} is {new.value}"
                yield Site(
                    literal, new,
                    f"{change}, {wrong}, {source.where(literal)}",
                    (tuple(t for t in (what.lower(), literal.value.lower(), new.value.lower()) if t),
                     MAGNITUDE_TERMS))


@family
class PowerSign(Family):
    name = "power-sign"
    theme = "constants"
    description = "a fractional exponent's sign flipped (x ** -0.5 -> x ** 0.5) or rsqrt <-> sqrt"

    def sites(self, source):
        for power in source.nodes(cst.BinaryOperation):
            if not isinstance(power.operator, cst.Power):
                continue
            exponent = float_value(power.right)
            if exponent is None or exponent == int(exponent):
                continue
            flipped = number(-exponent)
            yield Site(
                power.right, flipped,
                f"{source.code(power.left)} is raised to {source.code(flipped)} instead of {source.code(power.right)} "
                f"{source.where(power)}, the reciprocal of the intended scale",
                (("exponent", "power", "**", "sqrt", "root", "reciprocal", "inverse", "0.5"),
                 ("sign", "-0.5", "instead of", "multipl", "divid", "positive", "negative", "invert", "wrong")))
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            if name not in ROOTS or not isinstance(call.func, cst.Attribute):
                continue
            if not is_method_call(call) and receiver_name(call) != "torch":
                continue  # math.sqrt has no math.rsqrt
            new = ROOTS[name]
            yield Site(
                call, call.with_changes(func=call.func.with_changes(attr=cst.Name(new))),
                f"{new} is taken where {name} is meant {source.where(call)}: the reciprocal of the intended "
                f"value",
                (("sqrt", "root"), ("rsqrt", "reciprocal", "inverse", "1/", "1 /", "divid", "multipl", "instead")))


@family
class SqrtDropped(Family):
    name = "sqrt-dropped"
    theme = "constants"
    description = "a square root is missing: 1 / math.sqrt(d) -> 1 / d, torch.sqrt(s) -> s"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if callee_name(call) != "sqrt":
                continue
            if is_method_call(call) and not positional(call):
                inner = call.func.value
            elif not is_method_call(call) and len(positional(call)) == 1:
                inner = positional(call)[0].value
            else:
                continue
            terms = names_in(inner)
            yield Site(
                call, inner,
                f"the square root of {source.code(inner)} is missing {source.where(call)}: the value itself is "
                f"used where its root is meant",
                (("sqrt", "square root", "root"),
                 ("missing", "dropped", "without", "not taken", "forgot", "removed", "instead of") + terms))
