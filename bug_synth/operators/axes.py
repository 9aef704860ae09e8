"""Axes: a reduction over the wrong dimension, a view that lays axes out in the wrong order, a
transpose that is missing."""

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    callee_name, dotted, int_value, is_method_call, keyword, names_in, number, positional,
)
from bug_synth.operators.source import Site

# functions whose integer dim argument picks the axis they reduce, normalise or join along
AXIS_FUNCTIONS = frozenset({
    "softmax", "log_softmax", "argmax", "argmin", "mean", "sum", "max", "min", "amax", "amin", "std", "var",
    "logsumexp", "cumsum", "prod", "topk", "cat", "concat", "stack", "median", "all", "any", "count_nonzero",
})
AXIS_TERMS = ("dim", "axis", "axes")
FUNCTION_TERMS = {"softmax": ("softmax",), "log_softmax": ("softmax",), "cat": ("cat", "concat"),
                  "concat": ("cat", "concat"), "mean": ("mean", "averag"), "std": ("std", "standard dev")}
LAYOUT_FUNCTIONS = frozenset({"view", "reshape", "permute", "expand", "repeat", "unflatten"})
TRANSPOSES = frozenset({"transpose", "permute", "t", "swapaxes", "movedim"})


def _dim_argument(call, name):
    """The argument that holds the axis: dim=/axis=, or where each function takes it positionally."""
    named = keyword(call, "dim") or keyword(call, "axis")
    if named is not None:
        return named
    args = positional(call)
    index = (1 if is_method_call(call) else 2) if name == "topk" else (0 if is_method_call(call) else 1)
    return args[index] if len(args) > index else None


def _describe_dim(value):
    return f"dim {value}" + (" (the last)" if value == -1 else "")


@family
class ReductionAxis(Family):
    name = "reduction-axis"
    theme = "axes"
    description = "softmax/argmax/mean/sum/cat... over another integer dim (dim=-1 -> 0 or 1)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            if name not in AXIS_FUNCTIONS or not isinstance(call.func, cst.Attribute):
                continue  # max(a, 1) is Python's, not a reduction over dim 1
            arg = _dim_argument(call, name)
            old = None if arg is None else int_value(arg.value)
            if old is None:
                continue
            terms = (FUNCTION_TERMS.get(name, (name,)), AXIS_TERMS + ("dimension",))
            for new in [d for d in (0, 1, -1) if d != old][:2]:
                yield Site(
                    call, call.deep_replace(arg.value, number(new)),
                    f"{name} is taken over {_describe_dim(new)} instead of {_describe_dim(old)} "
                    f"{source.where(call)}", terms)
            without = [a for a in call.args if a is not arg]
            if without:
                without[-1] = without[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            yield Site(
                call, call.with_changes(args=without),
                f"{name} is called without its dim (it was {_describe_dim(old)}) {source.where(call)}, so it works "
                f"over its default dimension (every element, for a reduction)", terms)


@family
class ViewOrder(Family):
    name = "view-order"
    theme = "axes"
    description = "two adjacent sizes of a view/reshape/permute trade places (B, T, H, D -> B, H, T, D)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            args = positional(call)
            if name not in LAYOUT_FUNCTIONS or not is_method_call(call) or len(args) < 3:
                continue
            slots = [k for k, arg in enumerate(call.args) if arg.keyword is None and not arg.star]
            for i, j in zip(slots, slots[1:]):
                a, b = source.code(call.args[i].value), source.code(call.args[j].value)
                if a == b or "-1" in (a, b):
                    continue
                new_args = list(call.args)
                new_args[i] = call.args[i].with_changes(value=call.args[j].value)
                new_args[j] = call.args[j].with_changes(value=call.args[i].value)
                yield Site(
                    call, call.with_changes(args=new_args),
                    f"the {name} puts {b} before {a}, laying the axes out in the wrong order, "
                    f"{source.where(call)}",
                    ((name, "view", "reshape", "permute", "transpose"),
                     ("order", "swap", "axis", "axes", "dim", "layout", "shape", "head")))


def _is_none(element):
    return isinstance(element.slice, cst.Index) and m.matches(element.slice.value, m.Name("None"))


@family
class BroadcastAxis(Family):
    name = "broadcast-axis"
    theme = "axes"
    description = "a None index dropped or moved: mask[:, None, None, :] -> mask[:, None, :, None]"

    def sites(self, source):
        for subscript in source.nodes(cst.Subscript):
            elements = list(subscript.slice)
            nones = [i for i, e in enumerate(elements) if _is_none(e)]
            if not nones:
                continue
            seen = {source.code(subscript)}
            for new_elements in self._variants(elements, nones):
                new_elements[-1] = new_elements[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                new = subscript.with_changes(slice=new_elements)
                if source.code(new) in seen:
                    continue
                seen.add(source.code(new))
                yield Site(
                    subscript, new,
                    f"{source.code(new)} adds the broadcast axes in the wrong places (should be "
                    f"{source.code(subscript)}) {source.where(subscript)}",
                    (("broadcast", "unsqueeze", "none", "axis", "axes", "dimension", "dim", "shape"),
                     names_in(subscript.value, limit=2) or ("index",)))

    @staticmethod
    def _variants(elements, nones):
        """Each None left out, then each None traded with the element after it."""
        for i in nones:
            if len(elements) > 1:
                yield [e for k, e in enumerate(elements) if k != i]
        for i in nones:
            if i + 1 < len(elements) and not _is_none(elements[i + 1]):
                swapped = list(elements)
                swapped[i] = elements[i + 1].with_changes(comma=elements[i].comma)
                swapped[i + 1] = elements[i].with_changes(comma=elements[i + 1].comma)
                yield swapped


@family
class TransposeDropped(Family):
    name = "transpose-dropped"
    theme = "axes"
    description = "a .transpose()/.permute()/.t() in a chain is missing"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            if name not in TRANSPOSES or not isinstance(call.func, cst.Attribute):
                continue
            if is_method_call(call):
                arguments = ", ".join(source.code(arg.value) for arg in call.args)
                inner, shown = call.func.value, f".{name}({arguments})"
            elif positional(call):
                inner, shown = positional(call)[0].value, f"{dotted(call.func)}(...)"
            else:
                continue
            yield Site(
                call, inner,
                f"the {shown} of {source.code(inner)} is missing {source.where(call)}, so its axes stay in "
                f"the order they had",
                (("transpos", "permute", ".t()", "swapaxes", "movedim"),
                 ("missing", "dropped", "without", "forgot", "not transposed", "axis", "axes", "dimension", "head",
                  "order", "layout")))
