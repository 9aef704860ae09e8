"""Pieces out of order: two adjacent names of a tuple target trade places, so each takes the value
meant for the other (x, y = batch -> y, x = batch; B, T = idx.size(); for tok, keep in zip(...)),
or two adjacent pieces joined by torch.cat/stack over a literal list do (torch.cat([y1, y2], dim=-1)
-> torch.cat([y2, y1], dim=-1))."""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.arguments import SWAP_TERMS
from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, float_value, name_terms, positional
from bug_synth.operators.sizes import tensor_terms
from bug_synth.operators.source import Site

# iterations that pair a counter or a key with an item: trading the two crashes at once
COUNTED = frozenset({"enumerate", "items", "named_parameters", "named_modules", "named_buffers", "named_children"})
# names that hold a count, a string, a dict or a tensor's metadata, not data: traded with a name of
# another kind (epoch, inputs = ...; shape, device = ...; x, y, state_dict = ...) they crash at once
COUNTERS = frozenset({"i", "j", "n", "step", "epoch", "index", "it", "iteration", "micro_step"})
STRING_ENDINGS = ("name", "path", "dir", "key", "tag")
METADATA = frozenset({"shape", "device", "dtype"})
# what the literals and empty containers of an initialisation are made of
FRESH = frozenset({"None", "True", "False", "float", "int", "str", "list", "dict", "set", "tuple", "Counter",
                   "defaultdict", "OrderedDict"})
JOINS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack", "column_stack"})
UNPACK_TERMS = SWAP_TERMS + ("unpack",)
JOIN_TERMS = SWAP_TERMS + ("cat", "concat", "stack", "join")


def _binding(source, target):
    """(the Assign, For or CompFor that binds a tuple target, whether the tuple is its whole target),
    or None for a with-as, a chained assignment or an unusual target."""
    for node in source.ancestors(target):
        if isinstance(node, cst.Assign):
            return (node, node.targets[0].target is target) if len(node.targets) == 1 else None
        if isinstance(node, (cst.For, cst.CompFor)):
            return node, node.target is target
        if not isinstance(node, (cst.Tuple, cst.List, cst.Element, cst.AssignTarget)):
            return None
    return None


def _kind(name):
    """What a name holds, as far as its spelling tells: a count, a string, a dict, a shape, a device,
    a dtype or data."""
    if name in COUNTERS:
        return "count"
    if name in METADATA:
        return name  # a shape is no device
    if name.lower().endswith("dict"):
        return "dict"
    return "string" if name.lower().endswith(STRING_ENDINGS) else "data"


def _pointless(source, a, b):
    """Two literal values not worth trading: the same source or number (0 and 0.0: nothing changes),
    or two fresh values that are not both numbers (parts, end = [], 0: a crash at the first use)."""
    if source.code(a) == source.code(b):
        return True
    if float_value(a) is not None and float_value(b) is not None:
        return float_value(a) == float_value(b)
    return _fresh(a) and _fresh(b)


def _fresh(node):
    """A literal, or a new empty container: float("inf"), [], Counter(), defaultdict(set)."""
    return all(name.value in FRESH for name in m.findall(node, m.Name()))


def _swapped(sequence, i):
    """The elements of a tuple or list with i and i + 1 traded, each keeping its comma."""
    elements = list(sequence)
    elements[i], elements[i + 1] = (elements[i].with_changes(value=sequence[i + 1].value),
                                    elements[i + 1].with_changes(value=sequence[i].value))
    return elements


@family
class UnpackOrder(Family):
    name = "unpack-order"
    theme = "unpacking"
    description = "two names of a tuple target trade places: x, y = batch -> y, x = batch"

    def sites(self, source):
        for target in source.nodes(cst.Tuple, cst.List):
            names = [e.value.value if isinstance(e, cst.Element) and isinstance(e.value, cst.Name) else None
                     for e in target.elements]
            found = _binding(source, target) if 2 <= len(names) <= 3 and None not in names else None
            if found is None or not source.is_store(target):
                continue
            binder, whole = found
            value = binder.value if isinstance(binder, cst.Assign) else binder.iter
            if whole and not isinstance(binder, cst.Assign) and isinstance(value, cst.Call) and (
                    callee_name(value) in COUNTED):
                continue
            literal = (value.elements if whole and isinstance(value, (cst.Tuple, cst.List))
                       and len(value.elements) == len(names) else None)
            for i in range(len(names) - 1):
                a, b = names[i], names[i + 1]
                if a == b or "_" in (a, b) or _kind(a) != _kind(b):
                    continue
                if literal and _pointless(source, literal[i].value, literal[i + 1].value):
                    continue
                new = target.with_changes(elements=_swapped(target.elements, i))
                yield Site(
                    target, new,
                    f"{a} and {b} are unpacked in each other's places {source.where(target)}: {a} takes the "
                    f"value meant for {b}, and {b} the one meant for {a}",
                    (name_terms(a) + name_terms(b), UNPACK_TERMS),
                    shown=self._shown(source, binder, target, new))

    @staticmethod
    def _shown(source, binder, target, new):
        """The binding before and after: "B, T = idx.size()", "for x, y in pairs"."""
        whole = binder.targets[0].target if isinstance(binder, cst.Assign) else binder.target
        after = new if whole is target else whole.deep_replace(target, new)
        if isinstance(binder, cst.Assign):
            return tuple(f"{source.code(t)} = {source.code(binder.value)}" for t in (whole, after))
        return tuple(f"for {source.code(t)} in {source.code(binder.iter)}" for t in (whole, after))


def _bare_imports(source):
    """Join functions the file imports from torch by name (from torch import cat)."""
    imported = set()
    for line in re.findall(r"^from torch import (.+)$", source.text, re.MULTILINE):
        imported.update(re.findall(r"\b\w+\b", line))
    return imported & JOINS


@family
class ConcatOrder(Family):
    name = "concat-order"
    theme = "unpacking"
    description = "two pieces of a torch.cat/stack trade places: torch.cat([x1, x2]) -> torch.cat([x2, x1])"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name, args = callee_name(call), positional(call)
            joins = (dotted(call.func) == f"torch.{name}" if isinstance(call.func, cst.Attribute)
                     else name in source.memo("bare-joins", _bare_imports))
            if name not in JOINS or not joins or not args or not isinstance(args[0].value, (cst.List, cst.Tuple)):
                continue
            pieces = args[0].value
            if len(pieces.elements) < 2 or any(isinstance(e, cst.StarredElement) for e in pieces.elements):
                continue
            for i in range(len(pieces.elements) - 1):
                left, right = pieces.elements[i].value, pieces.elements[i + 1].value
                if source.code(left) == source.code(right):
                    continue
                new = call.deep_replace(pieces, pieces.with_changes(elements=_swapped(pieces.elements, i)))
                yield Site(
                    call, new,
                    f"{dotted(call.func)} puts {source.code(right)} before {source.code(left)} "
                    f"{source.where(call)}: the pieces of the result are in each other's places",
                    (tensor_terms(left, name) + tensor_terms(right, name), JOIN_TERMS))
