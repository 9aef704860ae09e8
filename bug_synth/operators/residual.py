"""Residual stream and normalisation: a residual connection dropped, a norm skipped, a pre-norm
block turned post-norm."""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, positional, receiver_name
from bug_synth.operators.source import Site

# norm_1, ln_f, q_norm, rms_norm, layer_norm, input_layernorm, norm: a normalisation layer or function
NORM_NAME = re.compile(r"(?:\w+_)?(?:norm|ln|layernorm|rmsnorm|normalize)(?:_?\w+)?")
NOT_NORMS = ("clip", "grad", "normal_", "normalized_shape")
VECTOR_NORM_RECEIVERS = frozenset({"torch", "torch.linalg", "linalg", "np", "numpy", "math"})


def residual_parts(source, assign):
    """(name, branch) for `x = x + branch` where the branch reads x, else None."""
    if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
        return None
    name, value = assign.targets[0].target.value, assign.value
    if not isinstance(value, cst.BinaryOperation) or not isinstance(value.operator, cst.Add):
        return None
    for kept, branch in ((value.left, value.right), (value.right, value.left)):
        if m.matches(kept, m.Name(name)) and isinstance(branch, cst.Call) and m.findall(branch, m.Name(name)):
            return name, branch
    return None


def is_norm_call(call):
    name = callee_name(call)
    return (bool(NORM_NAME.fullmatch(name)) and not any(word in name for word in NOT_NORMS)
            and receiver_name(call) not in VECTOR_NORM_RECEIVERS and len(positional(call)) >= 1)


@family
class ResidualDropped(Family):
    name = "residual-dropped"
    theme = "residual"
    description = "x = x + f(x) -> x = f(x): the residual connection is lost"

    def sites(self, source):
        for assign in source.nodes(cst.Assign):
            parts = residual_parts(source, assign)
            if parts is None:
                continue
            name, branch = parts
            yield Site(
                assign.value, branch,
                f"the residual connection is dropped {source.where(assign)}: {name} is replaced by "
                f"{source.code(branch)} instead of having it added",
                (("residual", "skip connection", "shortcut", f"{name} +", "identity path"),
                 ("drop", "missing", "replac", "overwrit", "without", "lost", "removed", "no longer added")))


@family
class NormDropped(Family):
    name = "norm-dropped"
    theme = "residual"
    description = "a normalisation call (self.norm_1(x), F.rms_norm(x, ...)) is skipped: its input goes on"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if not is_norm_call(call):
                continue
            inner = positional(call)[0].value
            yield Site(
                call, inner,
                f"the normalisation {dotted(call.func) or callee_name(call)} is skipped {source.where(call)}, "
                f"so {source.code(inner)} goes on unnormalised",
                (("norm",), ("skip", "missing", "dropped", "not applied", "without", "unnormali", "removed",
                             "bypass", "forgot", "never")))


@family
class NormMoved(Family):
    name = "norm-moved"
    theme = "residual"
    description = "pre-norm undone: x = x + f(norm(x)) -> x = norm(x + f(x)), or x = norm(x); x = x + f(x)"

    def sites(self, source):
        for assign in source.nodes(cst.Assign):
            parts = residual_parts(source, assign)
            if parts is None:
                continue
            name, branch = parts
            args = positional(branch)
            if not args or not isinstance(args[0].value, cst.Call) or not is_norm_call(args[0].value):
                continue
            norm = args[0].value
            if not m.matches(positional(norm)[0].value, m.Name(name)):
                continue
            plain_branch = branch.deep_replace(norm, cst.Name(name))
            summed = cst.BinaryOperation(cst.Name(name), cst.Add(), plain_branch)
            moved = norm.with_changes(args=[positional(norm)[0].with_changes(value=summed), *norm.args[1:]])
            terms = (("norm",), ("after", "post", "pre-norm", "prenorm", "residual", "stream", "order", "moved",
                                 "input", "in place"))
            yield Site(
                assign.value, moved,
                f"{source.code(norm.func)} is applied after the residual add instead of to the input of "
                f"{source.code(branch.func)} {source.where(assign)} (post-norm in place of pre-norm)", terms)
            line = source.enclosing_statement(assign)
            if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
                normed = line.with_changes(body=[assign.with_changes(value=norm)])
                added = line.with_changes(body=[assign.with_changes(value=summed)], leading_lines=())
                yield Site(
                    line, (normed.with_changes(leading_lines=()), added),
                    f"{source.code(norm.func)} normalises the residual stream {name} itself ({name} = "
                    f"{source.code(norm)}) instead of only the input of {source.code(branch.func)} "
                    f"{source.where(assign)}", terms)
