"""Arithmetic: a factor divided by where it should multiply and the reverse (a * b <-> a / b,
*= <-> /=), and a true division floored or a floor division made true (a / b <-> a // b,
/= <-> //=): a warmup fraction that stays 0, a size that is no longer a whole number."""

import re

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, float_value, names_in
from bug_synth.operators.source import Site

# what joins paths or repeats sequences with * and /: no number is scaled there
SEQUENCES = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Tuple, cst.ListComp)
PATH_NAME = re.compile(r"(?:^|_)(?:path|dir|root|folder)(?:_|$)")
PATH_CALLS = frozenset({"Path", "PurePath", "PosixPath", "PurePosixPath"})
SCALE_SWAP = {cst.Multiply: cst.Divide, cst.Divide: cst.Multiply,
              cst.MultiplyAssign: cst.DivideAssign, cst.DivideAssign: cst.MultiplyAssign}
FLOOR_SWAP = {cst.Divide: cst.FloorDivide, cst.FloorDivide: cst.Divide,
              cst.DivideAssign: cst.FloorDivideAssign, cst.FloorDivideAssign: cst.DivideAssign}
SHOWN_LIMIT = 40


def is_path_join(node):
    """A string, a Path(...), a name such as base_dir or checkpoint_path, or a join of them."""
    if isinstance(node, SEQUENCES):
        return True
    if isinstance(node, cst.Call):
        return callee_name(node) in PATH_CALLS or bool(PATH_NAME.search(callee_name(node).lower()))
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
        return is_path_join(node.left) or is_path_join(node.right)
    return bool(PATH_NAME.search(dotted(node).rsplit(".", 1)[-1].lower()))


def operands(node):
    """(left, right) of a binary operation or an augmented assignment."""
    if isinstance(node, cst.AugAssign):
        return node.target, node.value
    return node.left, node.right


def numeric_sites(source, swap):
    """(node, node with its operator swapped) for every operation of swap's operators on numbers:
    not on paths, strings or lists, and not between two literals (a constant, folded)."""
    for node in source.nodes(cst.BinaryOperation, cst.AugAssign):
        new_type = swap.get(type(node.operator))
        left, right = operands(node)
        if new_type is None or is_path_join(left) or is_path_join(right):
            continue
        if float_value(left) is not None and float_value(right) is not None:
            continue
        old = node.operator
        yield node, node.with_changes(operator=new_type(whitespace_before=old.whitespace_before,
                                                        whitespace_after=old.whitespace_after))


def shown(source, node, fallback):
    code = source.code(node)
    return code if len(code) <= SHOWN_LIMIT and "\n" not in code else fallback


def applied(source, node, done):
    """"step is divided by warmup": the operation as the mutant does it, its operands shown short."""
    left, right = operands(node)
    return f"{shown(source, left, 'the value')} is {done} by {shown(source, right, 'its factor')}"


@family
class ScaleInverted(Family):
    name = "scale-inverted"
    theme = "arithmetic"
    description = "a factor divides where it should multiply, or the reverse: a * b <-> a / b, *= <-> /="

    def sites(self, source):
        for node, new in numeric_sites(source, SCALE_SWAP):
            if float_value(operands(node)[1]) == 1:
                continue  # x * 1 and x / 1 are the same number
            multiplies = isinstance(node.operator, (cst.Multiply, cst.MultiplyAssign))
            done, meant = ("divided", "multiplied") if multiplies else ("multiplied", "divided")
            yield Site(
                node, new, f"{applied(source, node, done)} where it should be {meant} by it {source.where(node)}",
                (("divid", "division", "multipl", "invert", "inverse", "reciprocal", "scal"),
                 names_in(node, limit=3) or ("factor",)))


@family
class FloorDivision(Family):
    name = "floor-division"
    theme = "arithmetic"
    description = "a / b <-> a // b, /= <-> //=: a fraction floored to 0, or a size that is not a whole number"

    def sites(self, source):
        for node, new in numeric_sites(source, FLOOR_SWAP):
            if isinstance(node.operator, (cst.Divide, cst.DivideAssign)):
                done, meant, effect = "floor-divided (//)", "a true division", "the fraction is lost"
            else:
                done, meant, effect = "divided (/)", "a floor division (//)", "a count or size is not a whole number"
            yield Site(
                node, new, f"{applied(source, node, done)} where {meant} is meant {source.where(node)}, so {effect}",
                (("floor", "//", "integer division", "int division", "truncat", "round", "float", "whole number",
                  "true division", "fraction"),
                 names_in(node, limit=3) or ("division",)))
