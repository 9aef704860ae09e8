"""Subscripts dropped: the selection of part of a tensor or sequence is left out and the whole is
used: logits[:, -1, :] -> logits, idx[:, -max_len:] -> idx, tokens[1:] -> tokens, x[..., :d] -> x,
probs[torch.arange(n), targets] -> probs, mask[:, None, None, :] -> mask.

Only a subscript that is read and selects by a slice or by several indices: a single index picks an
element (tuple-index moves those), a string key looks up a dict or config, and sys.argv,
os.environ and shapes (size-axis reads those) are no tensors. Left alone too: x[:] and x[:, :]
(a copy selects nothing), x[None, None] (broadcasting adds leading axes anyway), slices of text,
the neighbour of zip(x, x[1:]) (pairs of an element with itself: no one writes that), and the few
items a loop only prints."""

from itertools import dropwhile

import libcst as cst

from bug_synth.operators.branches import is_record
from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import reports_only
from bug_synth.operators.shapes import callee_name, dotted, int_value
from bug_synth.operators.sizes import tensor_terms
from bug_synth.operators.source import Site

NOT_TENSORS = frozenset({"sys.argv", "os.environ", "environ", "argv"})
TEXT_NAMES = frozenset({"text", "line", "string", "word", "name", "path", "expr", "prefix", "suffix"})
LOST_TERMS = ("whole", "entire", "full", "all positions", "every position", "not sliced", "unsliced", "slice",
              "select", "subscript", "index", "missing", "dropped", "without", "instead of")
SHOWN_LIMIT = 40


def _is_none(element):
    part = element.slice
    return isinstance(part, cst.Index) and isinstance(part.value, cst.Name) and part.value.value == "None"


def _is_everything(element):
    """`:` or `...`: selects the whole axis."""
    part = element.slice
    if isinstance(part, cst.Slice):
        return part.lower is None and part.upper is None and part.step is None
    return isinstance(part.value, cst.Ellipsis)


def _is_shape(value):
    if dotted(value).rsplit(".", 1)[-1] == "shape":
        return True
    return isinstance(value, cst.Call) and callee_name(value) == "size" and not value.args


def _selects(subscript):
    """Whether the subscript selects part of a tensor or sequence: a slice or several indices, no
    string key, not a shape or argv/environ, and not only `:` and `...`."""
    elements = subscript.slice
    if any(isinstance(e.slice, cst.Index) and isinstance(e.slice.value, (cst.SimpleString, cst.FormattedString,
                                                                          cst.ConcatenatedString))
           for e in elements):
        return False
    if dotted(subscript.value) in NOT_TENSORS or _is_shape(subscript.value):
        return False
    if dotted(subscript.value).rsplit(".", 1)[-1].lower() in TEXT_NAMES:
        return False
    if all(_is_everything(e) for e in elements):
        return False
    leading = len(elements) - len(list(dropwhile(_is_none, elements)))
    if leading and all(_is_everything(e) for e in elements[leading:]):
        return False  # x[None, None], x[None, :]: only leading axes, which broadcasting adds anyway
    return len(elements) > 1 or isinstance(elements[0].slice, cst.Slice)


def _what(subscript):
    """What the selection picked, for a cause sentence."""
    indexes = [int_value(e.slice.value) for e in subscript.slice if isinstance(e.slice, cst.Index)]
    slices = [(int_value(e.slice.lower), int_value(e.slice.upper)) for e in subscript.slice
              if isinstance(e.slice, cst.Slice)]
    if -1 in indexes:
        return "only the last position"
    if (None, -1) in slices:
        return "all but the last position"
    if (1, None) in slices:
        return "all but the first position"
    if any(map(_is_none, subscript.slice)):
        return "new axes to broadcast against"
    return "part of it"


def _pairs_neighbours(source, subscript):
    """x[1:] in zip(x, x[1:])."""
    arg = source.parent(subscript)
    call = source.parent(arg)
    return (isinstance(arg, cst.Arg) and isinstance(call, cst.Call) and callee_name(call) == "zip"
            and any(source.code(other.value) == source.code(subscript.value) for other in call.args))


def _only_printed(source, subscript):
    """stories[:3] in `for story in stories[:3]: print(story)`."""
    ancestors = list(source.ancestors(subscript))
    loop = next((a for a in ancestors if isinstance(a, cst.BaseStatement)), None)
    return (isinstance(loop, cst.For) and (loop.iter is subscript or loop.iter in ancestors)
            and is_record(source, loop))


@family
class SubscriptDropped(Family):
    name = "subscript-dropped"
    theme = "subscripts"
    description = "a slice or multi-index selection left out: logits[:, -1, :] -> logits, tokens[1:] -> tokens"

    def sites(self, source):
        for subscript in source.nodes(cst.Subscript):
            if (not source.is_load(subscript) or not _selects(subscript) or reports_only(source, subscript)
                    or _pairs_neighbours(source, subscript) or _only_printed(source, subscript)):
                continue
            value = subscript.value
            shown = source.code(value)
            if len(shown) > SHOWN_LIMIT and isinstance(value, cst.Call):
                shown = f"{source.code(value.func)}(...)"
            selection = source.code(subscript)[len(source.code(value)):]
            yield Site(
                subscript, value,
                f"{shown} is used whole where {shown}{selection} is meant {source.where(subscript)}: the "
                f"subscript {selection} that selected {_what(subscript)} is missing",
                (tensor_terms(value, "tensor"), LOST_TERMS))
