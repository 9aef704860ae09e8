"""In-place updates lost: a statement x.add_(y) (mul_, lerp_, clamp_, ...) made x.add(y), which
computes a new tensor that nothing keeps, so x is never updated."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted
from bug_synth.operators.sizes import tensor_terms
from bug_synth.operators.source import Site

# only updates whose name without the underscore is a Tensor method too: x.copy(y), x.zero() and
# x.fill(v) do not exist, so dropping their underscore raises instead of losing the update
IN_PLACE = frozenset({
    "add_", "sub_", "mul_", "div_", "lerp_", "addcmul_", "addcdiv_", "clamp_", "clamp_min_", "clamp_max_", "clip_",
    "masked_fill_", "index_fill_", "index_add_", "index_copy_", "scatter_", "scatter_add_", "pow_", "sqrt_",
    "rsqrt_", "exp_", "neg_", "abs_", "tril_", "triu_", "relu_", "nan_to_num_", "detach_",
})
# torch._foreach_mul_, torch.nn.init.normal_: functions, not a tensor's methods
MODULE_ROOTS = frozenset({"torch", "nn", "F", "np", "numpy", "math", "init"})


@family
class InPlaceDropped(Family):
    name = "in-place-dropped"
    theme = "in-place"
    description = "x.add_(y) -> x.add(y) as a statement: the new tensor is discarded and x is never updated"

    def sites(self, source):
        for statement in source.nodes(cst.Expr):
            call = statement.value
            if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute):
                continue
            name, receiver = callee_name(call), call.func.value
            if name not in IN_PLACE or dotted(receiver).split(".")[0] in MODULE_ROOTS:
                continue
            new = name[:-1]
            yield Site(
                call, call.with_changes(func=call.func.with_changes(attr=cst.Name(new))),
                f"{new}(...) returns a new tensor that is discarded: the in-place update of "
                f"{source.code(receiver)} is lost {source.where(call)}",
                (("in-place", "in place", "inplace", name, "discard", "lost", "not updated", "never updated",
                  "unchanged", "return"),
                 tensor_terms(receiver, "tensor")))
