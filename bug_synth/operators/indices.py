"""Off by one: a slice shifted ([1:] <-> [:-1], [:n + 1] -> [:n]), a range one short, a mask's
diagonal moved, a + 1 / - 1 dropped (warmup, lengths)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    callee_name, int_value, is_method_call, is_plus_minus_one, keyword, names_in, number, plus,
    positional,
)
from bug_synth.operators.source import Site

OFF_BY_ONE = ("off by one", "off-by-one", "by one", "+ 1", "+1", "- 1", "-1", "plus one", "minus one", "one too")


def _shifted_bound(bound, upper):
    """A bound one off: e + 1 -> e, e - 1 -> e, k -> k + 1 (k - 1 at the end), a name -> name - 1
    as an upper bound, name + 1 as a lower one."""
    if is_plus_minus_one(bound):
        return bound.left
    value = int_value(bound)
    if value is not None:
        return number(value + 1 if value >= 0 else value - 1)
    if isinstance(bound, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        return plus(bound, -1 if upper else 1)
    return None


def _slice_with(part, lower=None, upper=None):
    return part.with_changes(lower=lower, upper=upper)


def _shifted_slices(part):
    """Every one-off version of a slice, [1:] <-> [:-1] first."""
    if part.step is not None:
        return
    if part.upper is None and int_value(part.lower) == 1:
        yield _slice_with(part, upper=number(-1))
        return
    if part.lower is None and int_value(part.upper) == -1:
        yield _slice_with(part, lower=number(1))
        return
    if part.lower is not None and (new := _shifted_bound(part.lower, upper=False)) is not None:
        yield part.with_changes(lower=new)
    if part.upper is not None and (new := _shifted_bound(part.upper, upper=True)) is not None:
        yield part.with_changes(upper=new)


@family
class SliceBound(Family):
    name = "slice-bound"
    theme = "off-by-one"
    description = "a slice shifted by one: [1:] <-> [:-1], [:n + 1] -> [:n], [:d] -> [:d - 1]"

    def sites(self, source):
        for part in source.nodes(cst.Slice):
            subscript = next(a for a in source.ancestors(part) if isinstance(a, cst.Subscript))
            value = names_in(subscript.value, limit=2)
            for new in _shifted_slices(part):
                shifted = subscript.deep_replace(part, new)
                yield Site(
                    subscript, shifted,
                    f"{source.code(shifted)} is off by one (should be {source.code(subscript)}) {source.where(part)}",
                    (OFF_BY_ONE + ("slice", "shift", "offset", "index", "bound"), value or ("slice",)))


@family
class RangeBound(Family):
    name = "range-bound"
    theme = "off-by-one"
    description = "a range one short or long: range(n) -> range(n - 1), range(a, b + 1) -> range(a, b)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            args = positional(call)
            if callee_name(call) != "range" or not isinstance(call.func, cst.Name) or not 1 <= len(args) <= 2:
                continue
            stop = args[-1].value
            new = stop.left if is_plus_minus_one(stop) else plus(stop, -1)
            short = not is_plus_minus_one(stop) or isinstance(stop.operator, cst.Add)
            yield Site(
                stop, new,
                f"the loop over range(...{source.code(new)}) runs one iteration {'short' if short else 'long'} "
                f"(the bound should be {source.code(stop)}) {source.where(call)}",
                (("range", "loop", "iteration") + names_in(stop, limit=2),
                 OFF_BY_ONE + ("short", "last", "miss", "extra", "bound")))


@family
class DiagonalOffset(Family):
    name = "diagonal-offset"
    theme = "off-by-one"
    description = "a tril/triu mask's diagonal moved by one (diagonal=0 <-> 1)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            if name not in ("tril", "triu", "tril_", "triu_"):
                continue
            args = positional(call)
            arg = keyword(call, "diagonal") or (args[0] if is_method_call(call) and args else
                                               args[1] if not is_method_call(call) and len(args) > 1 else None)
            if arg is None:
                tight = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                        whitespace_after=cst.SimpleWhitespace(""))
                diagonal = cst.Arg(number(1), keyword=cst.Name("diagonal"), equal=tight)
                node, new = call, call.with_changes(args=[*call.args, diagonal])
                old_text, new_text = "0", "1"
            else:
                value = int_value(arg.value)
                if value is not None:
                    replaced = number(value - 1 if value > 0 else value + 1)
                else:
                    replaced = plus(arg.value, 1)
                node, new = arg.value, replaced
                old_text, new_text = source.code(arg.value), source.code(replaced)
            yield Site(
                node, new,
                f"the {name.rstrip('_')} mask's diagonal is {new_text} where {old_text} is meant "
                f"{source.where(call)}: the mask is shifted by one position",
                (("diagonal", "tril", "triu", "mask", "causal"),
                 OFF_BY_ONE + ("shift", "future", "next", "itself", "own", "one position", "diagonal")))


@family
class ArithmeticOffByOne(Family):
    name = "arithmetic-off-by-one"
    theme = "off-by-one"
    description = "a + 1 or - 1 dropped outside slices and ranges ((step + 1) / warmup -> step / warmup)"

    def sites(self, source):
        for node in source.nodes(cst.BinaryOperation):
            if not is_plus_minus_one(node) or self._elsewhere(source, node):
                continue
            yield Site(
                node, node.left,
                f"{source.code(node.left)} is used where {source.code(node)} is meant {source.where(node)}: off "
                f"by one",
                (OFF_BY_ONE, names_in(node.left, limit=3) or ("off by one",)))

    @staticmethod
    def _elsewhere(source, node):
        """Slice bounds, range() stops and diagonals belong to the families above."""
        for ancestor in source.ancestors(node):
            if isinstance(ancestor, cst.Slice) or (
                    isinstance(ancestor, cst.Call) and callee_name(ancestor) in ("range", "tril", "triu")):
                return True
            if isinstance(ancestor, cst.BaseStatement):
                return False
        return False
