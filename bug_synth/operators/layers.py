"""Layers skipped: a module the forward pass should apply is passed over (self.c_proj(y) -> y), or
dropout is never applied (F.dropout(x) -> x, nn.Dropout(p) -> nn.Identity())."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.residual import is_norm_call
from bug_synth.operators.shapes import callee_name, dotted, expr, positional, receiver_name
from bug_synth.operators.source import Site

SKIP_TERMS = ("skip", "missing", "not applied", "bypass", "never", "removed", "without", "dropped", "identity")
DROPOUT_RECEIVERS = frozenset({"F", "nn.functional", "torch.nn.functional", "torch"})


def _is_dropout(call):
    name = callee_name(call).lower()
    return "dropout" in name or name in ("drop", "attn_drop", "resid_drop", "drop_path")


def _layers(source):
    """Attributes the file builds from a class (self.c_proj = nn.Linear(...), self.mlp = MLP(config)):
    the layers of a model, not methods or objects passed in."""
    built = set()
    for assign in source.nodes(cst.Assign):
        value = assign.value
        for target in assign.targets:
            if (isinstance(target.target, cst.Attribute) and dotted(target.target.value) == "self"
                    and isinstance(value, cst.Call) and callee_name(value)[:1].isupper()):
                built.add(target.target.attr.value)
    return built


@family
class LayerSkipped(Family):
    name = "layer-skipped"
    theme = "layers"
    description = "a layer of the model is passed over: self.c_proj(y) -> y"

    def sites(self, source):
        layers = source.memo("layers", _layers)
        for call in source.nodes(cst.Call):
            args = positional(call)
            if receiver_name(call) != "self" or len(args) != 1 or len(call.args) != 1:
                continue
            attribute = callee_name(call)
            if attribute not in layers or is_norm_call(call) or _is_dropout(call):
                continue
            inner = args[0].value
            yield Site(
                call, inner,
                f"the layer self.{attribute} is skipped {source.where(call)}: {source.code(inner)} is passed on as "
                f"it is",
                ((attribute.lower(),), SKIP_TERMS))


@family
class DropoutDropped(Family):
    name = "dropout-dropped"
    theme = "layers"
    description = "dropout never applied: F.dropout(x, p) -> x, self.dropout(x) -> x, nn.Dropout(p) -> nn.Identity()"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if not _is_dropout(call):
                continue
            args = positional(call)
            owner = receiver_name(call)
            if owner in ("nn", "torch.nn") and callee_name(call) == "Dropout":
                identity = expr(f"{owner}.Identity()")
                yield Site(
                    call, identity,
                    f"{source.code(call)} is an {owner}.Identity() {source.where(call)}, so dropout is never applied",
                    (("dropout",), SKIP_TERMS + ("not regulari", "no regulari")))
            elif args and (owner in DROPOUT_RECEIVERS or owner == "self" or isinstance(call.func, cst.Name)):
                inner = args[0].value
                yield Site(
                    call, inner,
                    f"dropout ({dotted(call.func) or callee_name(call)}) is not applied to {source.code(inner)} "
                    f"{source.where(call)}, so that part of the model trains without it",
                    (("dropout",), SKIP_TERMS + ("not regulari", "no regulari")))
