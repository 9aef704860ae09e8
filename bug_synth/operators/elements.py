"""Elements mixed up: the wrong element of a tuple or list read by a literal index (outputs[0] ->
outputs[1], x[-1] -> x[0]); a shape's index is a size's axis (sizes.py), a slice a bound (indices.py)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import int_value, number
from bug_synth.operators.sizes import shape_index, tensor_terms
from bug_synth.operators.source import Site

SMALL = 3  # larger literal indexes pick from tables, not from a tuple a call returned
SHOWN_LIMIT = 40


def other_element(index):
    """The element read instead: 0 <-> 1, -1 -> 0 (the last for the first), else one step towards 0
    (-2 -> -1)."""
    if index in (0, 1):
        return 1 - index
    if index == -1:
        return 0
    return index - 1 if index > 0 else index + 1


def _element(subscript):
    """The integer literal of name[i], obj.attr[i] or f(...)[i] (a single small index), else None."""
    elements = subscript.slice
    if len(elements) != 1 or not isinstance(elements[0].slice, cst.Index) or shape_index(subscript) is not None:
        return None
    if not isinstance(subscript.value, (cst.Name, cst.Attribute, cst.Call)):
        return None
    literal = elements[0].slice.value
    index = int_value(literal)
    return literal if index is not None and abs(index) <= SMALL else None


@family
class TupleIndex(Family):
    name = "tuple-index"
    theme = "elements"
    description = "the wrong element of a tuple or list read: outputs[0] -> outputs[1], x[-1] -> x[0]"

    def sites(self, source):
        for subscript in source.nodes(cst.Subscript):
            literal = _element(subscript)
            if literal is None or not source.is_load(subscript):
                continue
            old = int_value(literal)
            new = other_element(old)
            value = source.code(subscript.value)
            if len(value) > SHOWN_LIMIT and isinstance(subscript.value, cst.Call):
                value = f"{source.code(subscript.value.func)}(...)"
            yield Site(
                subscript, subscript.deep_replace(literal, number(new)),
                f"element {new} of {value} is read where element {old} is meant "
                f"{source.where(subscript)}",
                (("element", "index", "item", "wrong", "first", "second", "last", "position"),
                 tensor_terms(subscript.value, "element")))
