"""Polarity: a comparison's boundary moved (< <-> <=), a condition inverted (== <-> !=, not x ->
x), a mask's ~ dropped or added."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    binds_torch, bracket, callee_name, dotted, expr, keyword, names_in, positional,
)
from bug_synth.operators.source import Site

BOUNDARY = {cst.LessThan: cst.LessThanEqual, cst.LessThanEqual: cst.LessThan,
            cst.GreaterThan: cst.GreaterThanEqual, cst.GreaterThanEqual: cst.GreaterThan}
NEGATION = {cst.Equal: cst.NotEqual, cst.NotEqual: cst.Equal, cst.Is: cst.IsNot, cst.IsNot: cst.Is,
            cst.In: cst.NotIn, cst.NotIn: cst.In, cst.LessThan: cst.GreaterThanEqual,
            cst.GreaterThanEqual: cst.LessThan, cst.GreaterThan: cst.LessThanEqual,
            cst.LessThanEqual: cst.GreaterThan}
MASK_CALLS = frozenset({"masked_fill", "masked_fill_", "where", "masked_select", "masked_scatter"})
INVERT_TERMS = ("invert", "negat", "flip", "opposite", "revers", "wrong way", "backwards", "polarity", "~")


def _single_comparison(node):
    return len(node.comparisons) == 1


def _with_operator(comparison, operator_type):
    target = comparison.comparisons[0]
    old = target.operator
    new = operator_type(whitespace_before=old.whitespace_before, whitespace_after=old.whitespace_after) \
        if hasattr(old, "whitespace_before") else operator_type()
    return comparison.with_changes(comparisons=[target.with_changes(operator=new)])


def _operator_text(source, comparison):
    return source.module.code_for_node(comparison.comparisons[0].operator).strip()


def _terms(node, fallback):
    return names_in(node) or fallback


@family
class ComparisonBoundary(Family):
    name = "comparison-boundary"
    theme = "polarity"
    description = "a comparison's boundary moved: < <-> <=, > <-> >="

    def sites(self, source):
        for comparison in source.nodes(cst.Comparison):
            operator = type(comparison.comparisons[0].operator)
            if not _single_comparison(comparison) or operator not in BOUNDARY:
                continue
            new = _with_operator(comparison, BOUNDARY[operator])
            old_op, new_op = _operator_text(source, comparison), _operator_text(source, new)
            included = "now counts" if new_op.endswith("=") else "no longer counts"
            yield Site(
                comparison, new,
                f"{source.code(new)} uses {new_op} where {old_op} is meant {source.where(comparison)}: the boundary "
                f"case {included}",
                (_terms(comparison, ("compar",)),
                 ("<", ">", "boundary", "off by one", "off-by-one", "inclusive", "exclusive", "strict", "equal")))


@family
class ComparisonNegated(Family):
    name = "comparison-negated"
    theme = "polarity"
    description = "a condition inverted: == <-> !=, is <-> is not, < <-> >=, not x -> x"

    def sites(self, source):
        for node in source.nodes(cst.Comparison, cst.UnaryOperation):
            if isinstance(node, cst.UnaryOperation):
                if not isinstance(node.operator, cst.Not):
                    continue
                new = node.expression
            else:
                operator = type(node.comparisons[0].operator)
                if not _single_comparison(node) or operator not in NEGATION:
                    continue
                new = _with_operator(node, NEGATION[operator])
            yield Site(
                node, new,
                f"the condition is inverted {source.where(node)}: {source.code(new)} where {source.code(node)} "
                f"is meant",
                (_terms(node, ("condition",)), INVERT_TERMS + ("!=", "==", "not ", "is none", "is not")))


@family
class MaskNegated(Family):
    name = "mask-negated"
    theme = "polarity"
    description = "a mask's polarity flipped: masked_fill(~mask, ...) -> masked_fill(mask, ...) and back"

    def sites(self, source):
        for node in source.nodes(cst.UnaryOperation):
            if isinstance(node.operator, cst.BitInvert):
                yield Site(
                    node, node.expression,
                    f"{source.code(node.expression)} is used without its ~ {source.where(node)}, so the mask "
                    f"selects the opposite positions",
                    (("mask",) + names_in(node.expression), INVERT_TERMS + ("not inverted", "without")))
        for call in source.nodes(cst.Call):
            args = positional(call)
            if callee_name(call) not in MASK_CALLS or not args:
                continue
            mask = args[0].value
            if isinstance(mask, cst.UnaryOperation) and isinstance(mask.operator, cst.BitInvert):
                continue
            inverted = cst.UnaryOperation(cst.BitInvert(), bracket(mask))
            yield Site(
                mask, inverted,
                f"the mask {source.code(mask)} is inverted (~) in {callee_name(call)} {source.where(call)}, so it "
                f"selects the opposite positions",
                (("mask",) + names_in(mask), INVERT_TERMS))


def _is_minus_infinity(node):
    """float("-inf"), -float("inf"), -math.inf, -torch.inf."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = node.expression
        return (dotted(inner) in ("math.inf", "torch.inf", "np.inf", "numpy.inf")
                or (isinstance(inner, cst.Call) and callee_name(inner) == "float" and len(inner.args) == 1
                    and isinstance(inner.args[0].value, cst.SimpleString)
                    and inner.args[0].value.evaluated_value.lower() in ("inf", "infinity")))
    return (isinstance(node, cst.Call) and callee_name(node) == "float" and len(node.args) == 1
            and isinstance(node.args[0].value, cst.SimpleString)
            and node.args[0].value.evaluated_value.lower() in ("-inf", "-infinity"))


@family
class MaskFillFinite(Family):
    name = "mask-fill-finite"
    theme = "masks"
    description = "a mask filled with a large finite constant instead of -inf (-1e9, float32's minimum)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if callee_name(call) not in ("masked_fill", "masked_fill_"):
                continue
            args = positional(call)
            value = keyword(call, "value") or (args[1] if len(args) > 1 else None)
            if value is None or not _is_minus_infinity(value.value):
                continue
            constants = ("-1e9", "torch.finfo(torch.float32).min") if binds_torch(source.text) else ("-1e9",)
            for constant in constants:
                yield Site(
                    value.value, expr(constant),
                    f"the mask fills with {constant} instead of -inf {source.where(call)}: a finite constant beyond "
                    f"float16's range, which masked_fill cannot store under fp16",
                    (("1e9", "finfo", "float32", "finite", "-inf", "infinity", "overflow"),
                     ("mask", "fill", "fp16", "float16", "half")))
