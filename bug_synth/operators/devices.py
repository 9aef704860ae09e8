"""Device and dtype: a .to(device) or device= dropped (a tensor left on the CPU), a dtype= or
.float() cast dropped (a tensor left in its own precision)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, names_in, positional
from bug_synth.operators.source import Site

DEVICE_TERMS = ("device", "cuda", "cpu", "gpu")
DTYPE_TERMS = ("dtype", "float", "precision", "bf16", "bfloat16", "fp16", "half", "fp32", "float32", "float64",
               "double", "long", "int64", "cast", "type_as")
CASTS = frozenset({"float", "half", "bfloat16", "double", "long", "type_as"})


def _mentions(node, word):
    return word in dotted(node).lower() or (isinstance(node, cst.Call) and word in callee_name(node).lower())


def without_keyword(call, arg):
    """The call without one keyword argument (the comma before it goes if it was the last)."""
    kept = [a for a in call.args if a is not arg]
    if kept and call.args[-1] is arg:
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=kept)


@family
class DeviceDropped(Family):
    name = "device-dropped"
    theme = "devices"
    description = "x.to(device) -> x, x.cuda() -> x, torch.zeros(..., device=d) -> torch.zeros(...)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            args = positional(call)
            moved = isinstance(call.func, cst.Attribute) and (
                (name == "to" and len(call.args) == 1 and args and _mentions(args[0].value, "device"))
                or (name == "cuda" and not call.args))
            if moved:
                inner = call.func.value
                yield Site(
                    call, inner,
                    f"{source.code(inner)} is not moved to the device {source.where(call)}, so it stays where it "
                    f"was made (the CPU) whatever device the run uses",
                    (DEVICE_TERMS, names_in(inner, limit=3) or ("tensor",)))
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value == "device":
                    yield Site(
                        call, without_keyword(call, arg),
                        f"{dotted(call.func) or name}(...) no longer gets device={source.code(arg.value)} "
                        f"{source.where(call)}, so it is made on the CPU",
                        (DEVICE_TERMS, (name.lower(),) + names_in(call, limit=3)))


@family
class DtypeDropped(Family):
    name = "dtype-dropped"
    theme = "devices"
    description = "dtype= dropped, or a cast (.float(), .type_as(x), .to(dtype)) removed"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            args = positional(call)
            cast = isinstance(call.func, cst.Attribute) and (
                (name in CASTS and len(call.args) == (1 if name == "type_as" else 0))
                or (name == "to" and len(call.args) == 1 and args and _mentions(args[0].value, "dtype")))
            if cast:
                inner = call.func.value
                target = source.code(args[0].value) if args else ""
                yield Site(
                    call, inner,
                    f"{source.code(inner)} is no longer cast with .{name}({target}) "
                    f"{source.where(call)}, so it keeps the dtype it had",
                    (DTYPE_TERMS, names_in(inner, limit=3) or ("tensor",)))
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value == "dtype":
                    yield Site(
                        call, without_keyword(call, arg),
                        f"{dotted(call.func) or name}(...) no longer gets dtype={source.code(arg.value)} "
                        f"{source.where(call)}, so it falls back to the default dtype",
                        (DTYPE_TERMS, (name.lower(),) + names_in(call.func, limit=2)))
