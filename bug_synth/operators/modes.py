"""Train/eval modes: a model.train() or model.eval() call dropped, or one turned into the other."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, receiver_name
from bug_synth.operators.source import Site

MODES = {"train": "eval", "eval": "train"}
MODE_TERMS = ("train()", ".train", "eval()", ".eval", "training mode", "train mode", "eval mode", "evaluation mode",
              "inference mode")
OTHER_MODE = {"train": "evaluation", "eval": "training"}


def _mode_call(node):
    """The call of `x.train()` / `x.eval()` (x.train(True) too), else None."""
    if (isinstance(node, cst.Call) and callee_name(node) in MODES and isinstance(node.func, cst.Attribute)
            and len(node.args) <= 1 and receiver_name(node)):
        return node
    return None


@family
class ModeCallDropped(Family):
    name = "mode-call-dropped"
    theme = "modes"
    description = "a model.train() / model.eval() statement removed: the model stays in the other mode"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            if len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
                continue
            call = _mode_call(line.body[0].value)
            if call is None:
                continue
            mode, owner = callee_name(call), receiver_name(call)
            yield Site(
                line, None,
                f"{owner}.{mode}() is missing {source.where(line)}, so {owner} stays in {OTHER_MODE[mode]} mode "
                f"(dropout, batch-norm statistics)",
                (MODE_TERMS, ("missing", "never", "stays", "left in", "not restored", "not called", "dropout",
                              "batchnorm", "batch norm", "forgot", "removed")))


@family
class ModeCallFlipped(Family):
    name = "mode-call-flipped"
    theme = "modes"
    description = "model.train() <-> model.eval()"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if _mode_call(call) is None:
                continue
            mode, owner = callee_name(call), receiver_name(call)
            other = MODES[mode]
            yield Site(
                call, call.with_changes(func=call.func.with_changes(attr=cst.Name(other))),
                f"{owner}.{other}() is called where {owner}.{mode}() is meant {source.where(call)}, so {owner} runs "
                f"in {OTHER_MODE[mode]} mode (dropout, batch-norm statistics)",
                (MODE_TERMS, ("instead", "wrong", "dropout", "batchnorm", "batch norm", "running", "swapped",
                              "should be")))
