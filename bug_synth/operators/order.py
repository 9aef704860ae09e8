"""The optimizer step's order: zero_grad, backward, unscale, clip, step, scaler update and scheduler
step, two adjacent ones swapped or one of them missing."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, receiver_name
from bug_synth.operators.source import Reorder, Site, swap

ORDER_TERMS = ("order", "before", "after", "swap", "sequence", "too early", "too late", "first", "then")


def step_kind(call):
    """What a call does in an optimizer step ("zero_grad", "backward", "clip", "unscale", "step",
    "update", "scheduler"), or None."""
    name, owner = callee_name(call), receiver_name(call).lower()
    if name == "zero_grad":
        return "zero_grad"
    if name == "backward":
        return "backward"
    if name.startswith("clip_grad"):
        return "clip"
    if name == "unscale_":
        return "unscale"
    if name == "step" and "sched" in owner:
        return "scheduler"
    if name == "step" and any(word in owner for word in ("optim", "opt", "scaler")):
        return "step"
    if name == "update" and "scaler" in owner:
        return "update"
    return None


def _step_calls(source):
    """{simple statement line: its first optimizer-step call} over the file."""
    found = {}
    for call in source.nodes(cst.Call):
        line = source.enclosing_statement(call)
        if isinstance(line, cst.SimpleStatementLine) and line not in found and step_kind(call):
            found[line] = call
    return found


def step_call(source, line):
    """The first optimizer-step call of a simple statement line, or None."""
    return source.memo("step calls", _step_calls).get(line)


def line_kind(source, line):
    call = step_call(source, line)
    return None if call is None else step_kind(call)


# (what the words a diagnosis names it by, what goes wrong without it)
KIND_TERMS = {
    "zero_grad": (("zero_grad", "zero grad", "zeroed", "clear", "reset"), "gradients accumulate across steps"),
    "backward": (("backward", "backprop"), "no gradients are computed"),
    "clip": (("clip",), "gradients are not clipped"),
    "unscale": (("unscale",), "gradients are clipped while still multiplied by the loss scale"),
    "step": (("optimizer.step", "step()", "optimizer step", "scaler.step", "weights are never updated",
              "no update", "never updat"), "the weights are never updated"),
    "update": (("scaler.update", "update()", "loss scale", "scaler"), "the loss scale never adapts"),
    "scheduler": (("scheduler", "schedule", "learning rate", "lr"), "the learning rate never follows its schedule"),
}


@family
class StepOrder(Family):
    name = "step-order"
    theme = "order"
    description = "two adjacent optimizer-step statements swapped (clip after step, scheduler before step...)"

    def sites(self, source):
        for block in source.nodes(cst.IndentedBlock):
            body = list(block.body)
            for first, second in zip(body, body[1:]):
                a, b = line_kind(source, first), line_kind(source, second)
                if a is None or b is None or a == b or not source.usable(first) or not source.usable(second):
                    continue
                early, late = source.code(step_call(source, second)), source.code(step_call(source, first))
                yield swap(
                    first, second,
                    f"{early} runs before {late} instead of after it {source.where(first)}",
                    (KIND_TERMS[a][0] + KIND_TERMS[b][0], ORDER_TERMS))


@family
class StepMoved(Family):
    name = "step-moved"
    theme = "order"
    description = "an optimizer-step statement moved past another that is not next to it (scheduler before step)"

    def sites(self, source):
        for block in source.nodes(cst.IndentedBlock):
            body = list(block.body)
            kinds = {i: line_kind(source, s) for i, s in enumerate(body) if line_kind(source, s) and source.usable(s)}
            for i in kinds:
                for j in kinds:
                    if abs(i - j) < 2 or kinds[i] == kinds[j]:
                        continue
                    # body[j] moves to just before body[i] (j > i) or just after it (j < i)
                    low, high = min(i, j), max(i, j)
                    span = tuple(body[low:high + 1])
                    rest = [k for k in range(high - low + 1) if k != j - low]
                    order = tuple([j - low, *rest] if j > i else [*rest, j - low])
                    where = "before" if j > i else "after"
                    moved, anchor = source.code(step_call(source, body[j])), source.code(step_call(source, body[i]))
                    yield Reorder(
                        span, order, body[j],
                        f"{moved} runs {where} {anchor} {source.where(body[j])}, out of its place in the step",
                        (KIND_TERMS[kinds[j]][0] + KIND_TERMS[kinds[i]][0], ORDER_TERMS))


@family
class StepCallDropped(Family):
    name = "step-call-dropped"
    theme = "order"
    description = "an optimizer-step statement removed (zero_grad, clip, scheduler.step, scaler.update...)"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            kind = line_kind(source, line)
            if kind is None:
                continue
            terms, consequence = KIND_TERMS[kind]
            yield Site(
                line, None,
                f"{source.code(step_call(source, line))} is missing {source.where(line)}, so {consequence}",
                (terms, ("missing", "never", "not called", "removed", "dropped", "forgot", "no ", "without")))
