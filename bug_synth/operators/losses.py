"""Losses swapped: cross_entropy <-> nll_loss (logits where log-probabilities are expected, and the
reverse), mse_loss <-> l1_loss, binary_cross_entropy_with_logits -> binary_cross_entropy."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, receiver_name
from bug_synth.operators.source import Site

FUNCTIONS = {"cross_entropy": "nll_loss", "nll_loss": "cross_entropy", "mse_loss": "l1_loss", "l1_loss": "mse_loss",
             "binary_cross_entropy_with_logits": "binary_cross_entropy",
             "binary_cross_entropy": "binary_cross_entropy_with_logits"}
MODULES = {"CrossEntropyLoss": "NLLLoss", "NLLLoss": "CrossEntropyLoss", "MSELoss": "L1Loss", "L1Loss": "MSELoss",
           "BCEWithLogitsLoss": "BCELoss", "BCELoss": "BCEWithLogitsLoss"}
WHY = {"nll_loss": "it expects log-probabilities, and gets raw logits",
       "cross_entropy": "it applies log_softmax itself, to values that already had it",
       "NLLLoss": "it expects log-probabilities, and gets raw logits",
       "CrossEntropyLoss": "it applies log_softmax itself, to values that already had it",
       "binary_cross_entropy": "it expects probabilities, and gets logits",
       "binary_cross_entropy_with_logits": "it applies a sigmoid itself, to values that already had it",
       "BCELoss": "it expects probabilities, and gets logits",
       "BCEWithLogitsLoss": "it applies a sigmoid itself, to values that already had it"}
TERMS = {"cross_entropy": ("cross_entropy", "cross entropy", "cross-entropy", "crossentropy"),
         "nll_loss": ("nll", "negative log"), "mse_loss": ("mse", "squared"), "l1_loss": ("l1", "absolute"),
         "binary_cross_entropy": ("binary_cross_entropy", "bce"),
         "binary_cross_entropy_with_logits": ("with_logits", "bcewithlogits", "with logits")}


def _terms(name):
    key = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "MSELoss": "mse_loss", "L1Loss": "l1_loss",
           "BCELoss": "binary_cross_entropy", "BCEWithLogitsLoss": "binary_cross_entropy_with_logits"}.get(name, name)
    return TERMS.get(key, (name.lower(),))


# options that decide which targets count and how much: without them padding counts, classes weigh alike
OPTIONS = {"ignore_index": "targets marked {value} (padding, prompt tokens) count in the loss",
           "weight": "every class weighs the same in the loss",
           "pos_weight": "positive examples weigh the same as negative ones",
           "label_smoothing": "the targets are not smoothed"}
OPTION_TERMS = {"ignore_index": ("ignore_index", "ignore index", "padding", "pad", "-1"),
                "weight": ("weight", "imbalanc", "balanc"), "pos_weight": ("pos_weight", "weight", "imbalanc"),
                "label_smoothing": ("smoothing",)}
ALL_LOSSES = frozenset(FUNCTIONS) | frozenset(MODULES)


@family
class LossOptionDropped(Family):
    name = "loss-option-dropped"
    theme = "losses"
    description = "ignore_index= / weight= / label_smoothing= left out of a loss"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if callee_name(call) not in ALL_LOSSES:
                continue
            for arg in call.args:
                option = arg.keyword.value if arg.keyword is not None else ""
                if option not in OPTIONS:
                    continue
                kept = [a for a in call.args if a is not arg]
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                effect = OPTIONS[option].format(value=source.code(arg.value))
                yield Site(
                    call, call.with_changes(args=kept),
                    f"{callee_name(call)} no longer gets {option}={source.code(arg.value)} {source.where(call)}, so "
                    f"{effect}",
                    (OPTION_TERMS[option], ("missing", "dropped", "without", "removed", "no longer", "forgot",
                                            "count", "ignored")))


@family
class LossSwapped(Family):
    name = "loss-swapped"
    theme = "losses"
    description = "cross_entropy <-> nll_loss, mse_loss <-> l1_loss, BCE with/without logits"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name, owner = callee_name(call), receiver_name(call)
            if not isinstance(call.func, cst.Attribute):
                continue
            table = FUNCTIONS if owner in ("F", "nn.functional", "torch.nn.functional") else (
                MODULES if owner in ("nn", "torch.nn") else {})
            new = table.get(name)
            if new is None:
                continue
            why = f": {WHY[new]}" if new in WHY else ""
            yield Site(
                call, call.with_changes(func=call.func.with_changes(attr=cst.Name(new))),
                f"{new} is used where {name} is meant {source.where(call)}{why}",
                (_terms(new), _terms(name)))
