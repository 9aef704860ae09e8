"""Activations swapped: gelu <-> relu, silu -> relu, tanh <-> sigmoid, softmax <-> log_softmax,
as functions (F.gelu), modules (nn.GELU) or tensor methods (x.softmax)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, is_method_call, receiver_name
from bug_synth.operators.source import Site

FUNCTIONS = {"relu": "gelu", "gelu": "relu", "silu": "gelu", "tanh": "sigmoid", "sigmoid": "tanh",
             "softmax": "log_softmax", "log_softmax": "softmax", "leaky_relu": "relu", "softplus": "relu",
             "elu": "relu", "mish": "relu", "relu6": "relu"}
MODULES = {"ReLU": "GELU", "GELU": "ReLU", "SiLU": "GELU", "Tanh": "Sigmoid", "Sigmoid": "Tanh",
           "Softmax": "LogSoftmax", "LogSoftmax": "Softmax", "LeakyReLU": "ReLU"}
# what a tensor has as a method too (x.gelu() does not exist)
METHODS = {"relu": "sigmoid", "sigmoid": "tanh", "tanh": "sigmoid", "softmax": "log_softmax",
           "log_softmax": "softmax"}
FUNCTION_RECEIVERS = frozenset({"F", "torch", "nn.functional", "torch.nn.functional"})
MODULE_RECEIVERS = frozenset({"nn", "torch.nn"})
SYNONYMS = {"log_softmax": ("log_softmax", "log-softmax", "log softmax", "logsoftmax", "log prob"),
            "logsoftmax": ("log_softmax", "log-softmax", "log softmax", "logsoftmax", "log prob"),
            "softmax": ("softmax",), "relu": ("relu",), "gelu": ("gelu",), "silu": ("silu", "swish")}


def _terms(name):
    name = name.lower()
    return SYNONYMS.get(name, (name,))


def _replacement(call):
    name, owner = callee_name(call), receiver_name(call)
    if owner in FUNCTION_RECEIVERS and name in FUNCTIONS:
        return FUNCTIONS[name]
    if owner in MODULE_RECEIVERS and name in MODULES:
        return MODULES[name]
    if is_method_call(call) and name in METHODS:
        return METHODS[name]
    return None


@family
class ActivationSwapped(Family):
    name = "activation-swapped"
    theme = "activations"
    description = "gelu <-> relu, silu -> gelu, tanh <-> sigmoid, softmax <-> log_softmax"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if not isinstance(call.func, cst.Attribute):
                continue
            new = _replacement(call)
            if new is None:
                continue
            old = callee_name(call)
            yield Site(
                call, call.with_changes(func=call.func.with_changes(attr=cst.Name(new))),
                f"{new} is applied where {old} is meant {source.where(call)}",
                (_terms(new), _terms(old)))
