"""Sizes read from the wrong axis: x.size(1) where x.size(0) is meant, x.shape[-2] for x.shape[-1],
x.size()[2] for x.size()[1] (a literal dimension moved to its neighbour)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    callee_name, dotted, int_value, is_method_call, keyword, name_terms, names_in, number, positional,
)
from bug_synth.operators.source import Site

SIZE_TERMS = ("size", "shape", "dim", "axis", "dimension")


def neighbour(dim):
    """The adjacent axis a size is misread from: 0 <-> 1 and -1 <-> -2 (the pairs a mix-up
    trades: batch and time, the last two), else one step towards them."""
    if dim in (0, 1):
        return 1 - dim
    if dim in (-1, -2):
        return -3 - dim
    return dim - 1 if dim > 0 else dim + 1


def shape_index(subscript):
    """(the integer literal, the tensor) of x.shape[i], shape[i] or x.size()[i], else None."""
    elements, value = subscript.slice, subscript.value
    if len(elements) != 1 or not isinstance(elements[0].slice, cst.Index):
        return None
    literal = elements[0].slice.value
    if int_value(literal) is None:
        return None
    if isinstance(value, cst.Name) and value.value == "shape":
        return literal, value
    if isinstance(value, cst.Attribute) and value.attr.value == "shape":
        return literal, value.value
    if isinstance(value, cst.Call) and callee_name(value) == "size" and is_method_call(value) and not value.args:
        return literal, value.func.value
    return None


def tensor_terms(node, fallback):
    """What a diagnosis calls a tensor (or the tuple an element is read from): its names, or for
    x or p the name set off, or `fallback` when it has no name."""
    return names_in(node, limit=2) or name_terms(dotted(node).rsplit(".", 1)[-1] or fallback)


@family
class SizeAxis(Family):
    name = "size-axis"
    theme = "sizes"
    description = "a size read from the adjacent axis: x.size(0) <-> x.size(1), x.shape[-1] <-> x.shape[-2]"

    def sites(self, source):
        for node in source.nodes(cst.Call, cst.Subscript):
            found = self._size_argument(node) if isinstance(node, cst.Call) else shape_index(node)
            if found is None:
                continue
            literal, tensor = found
            old = int_value(literal)
            new = neighbour(old)
            yield Site(
                node, node.deep_replace(literal, number(new)),
                f"the size of dim {new} is read where dim {old}'s is meant {source.where(node)}",
                (SIZE_TERMS, tensor_terms(tensor, "size")))

    @staticmethod
    def _size_argument(call):
        """(the integer literal, the tensor) of x.size(i) or x.size(dim=i), else None."""
        if callee_name(call) != "size" or not is_method_call(call) or len(call.args) != 1:
            return None
        arg = keyword(call, "dim") or (positional(call) or [None])[0]
        if arg is None or int_value(arg.value) is None:
            return None
        return arg.value, call.func.value
