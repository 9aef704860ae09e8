"""Autograd: a .detach() dropped or added, a torch.no_grad()/inference_mode() dropped or added."""

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.residual import residual_parts
from bug_synth.operators.shapes import (
    LOSS_FUNCTIONS, binds_torch, bracket, callee_name, dotted, expr, names_in, positional,
)
from bug_synth.operators.source import Site

GRAD_MODES = frozenset({"no_grad", "inference_mode"})
GRAD_TERMS = ("no_grad", "no grad", "inference_mode", "inference mode", "autograd", "graph", "requires_grad",
              "grad enabled", "gradient tracking", "gradients enabled")


def _is_grad_mode(node):
    """torch.no_grad(), no_grad(), torch.inference_mode() (called or not)."""
    if isinstance(node, cst.Call):
        node = node.func
    return dotted(node).rsplit(".", 1)[-1] in GRAD_MODES


def _detached(node):
    return cst.Call(cst.Attribute(bracket(node), cst.Name("detach")))


@family
class DetachDropped(Family):
    name = "detach-dropped"
    theme = "autograd"
    description = "x.detach() -> x: a value that should leave the graph stays in it"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            if callee_name(call) != "detach" or call.args or not isinstance(call.func, cst.Attribute):
                continue
            inner = call.func.value
            yield Site(
                call, inner,
                f"{source.code(inner)} is no longer detached {source.where(call)}, so the autograd graph behind it "
                f"is kept (and gradients can flow through it)",
                (("detach",), ("missing", "dropped", "without", "graph", "not detached", "removed", "leak", "memory",
                               "grad")))


@family
class DetachAdded(Family):
    name = "detach-added"
    theme = "autograd"
    description = ".detach() added to a loss's input or a residual branch: no gradient flows back through it"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            args = positional(call)
            if callee_name(call) not in LOSS_FUNCTIONS or not args:
                continue
            inner = args[0].value
            if not (isinstance(inner, cst.Call) and callee_name(inner) == "detach"):
                yield Site(
                    inner, _detached(inner),
                    f"{source.code(inner)} is detached before {callee_name(call)} {source.where(call)}, so no "
                    f"gradient reaches the model through this loss",
                    (("detach",), ("gradient", "grad", "graph", "backprop", "no learning", "not learn", "frozen")))
        for assign in source.nodes(cst.Assign):
            parts = residual_parts(source, assign)
            if parts is None:
                continue
            name, branch = parts
            yield Site(
                branch, _detached(branch),
                f"the output of {source.code(branch.func)} is detached before it is added to {name} "
                f"{source.where(assign)}, so its weights get no gradient",
                (("detach",), ("gradient", "grad", "graph", "backprop", "no learning", "not learn", "frozen")
                 + names_in(branch.func, limit=2)))


@family
class NoGradDropped(Family):
    name = "no-grad-dropped"
    theme = "autograd"
    description = "@torch.no_grad() / with torch.no_grad(): / inference_mode removed: a graph is built"

    def sites(self, source):
        for function in source.nodes(cst.FunctionDef):
            for decorator in function.decorators:
                if _is_grad_mode(decorator.decorator):
                    yield Site(
                        decorator, None,
                        f"{function.name.value} runs without {source.code(decorator.decorator)}, so autograd "
                        f"records a graph for everything it computes",
                        (GRAD_TERMS, ("missing", "dropped", "without", "removed", "enabled", "memory", "track",
                                      "decorator")))
        for block in source.nodes(cst.With):
            if len(block.items) != 1 or not _is_grad_mode(block.items[0].item) or block.asynchronous:
                continue
            if not isinstance(block.body, cst.IndentedBlock):
                continue
            yield Site(
                block, tuple(block.body.body),
                f"the block {source.where(block)} runs without {source.code(block.items[0].item)}, so autograd "
                f"records a graph for it",
                (GRAD_TERMS, ("missing", "dropped", "without", "removed", "enabled", "memory", "track")))


@family
class NoGradAdded(Family):
    name = "no-grad-added"
    theme = "autograd"
    description = "a model's forward, or the forward pass a backward() follows, put under torch.no_grad()"

    def sites(self, source):
        if not binds_torch(source.text):
            return
        for function in source.nodes(cst.FunctionDef):
            is_method = bool(function.params.params) and function.params.params[0].name.value == "self"
            if function.name.value != "forward" or not is_method or any(
                    _is_grad_mode(d.decorator) for d in function.decorators):
                continue
            decorator = cst.Decorator(expr("torch.no_grad()"))
            header = f"def {function.name.value}(...):"
            yield Site(
                function, function.with_changes(decorators=(decorator, *function.decorators)),
                f"{source.function(function)} runs under torch.no_grad(), so nothing it computes has a gradient",
                (GRAD_TERMS, ("forward", "added", "decorat", "under", "no gradient", "backward")),
                shown=(header, f"@torch.no_grad()\n{header}"))
        backward_reads = self._backward_reads(source)
        for line in source.nodes(cst.SimpleStatementLine):
            target = self._assigned_call_target(line)
            reads = backward_reads.get(source.enclosing_function(line), ())
            if target is None or not any(at > source.line(line) and target in names for at, names in reads):
                continue
            wrapped = cst.With(items=[cst.WithItem(expr("torch.no_grad()"))],
                               body=cst.IndentedBlock(body=[line.with_changes(leading_lines=())]),
                               leading_lines=line.leading_lines)
            yield Site(
                line, wrapped,
                f"{target} is computed under torch.no_grad() {source.where(line)}, so backward() has no graph "
                f"to differentiate",
                (GRAD_TERMS, ("loss", "backward", "added", "wrapped", "under", "forward") + (target.lower(),)))

    @staticmethod
    def _backward_reads(source):
        """For each function, (line, names) of every loss.backward() or scaler.scale(loss).backward()
        in it: the names of what is differentiated."""
        reads = {}
        for call in source.nodes(cst.Call):
            if callee_name(call) == "backward" and isinstance(call.func, cst.Attribute):
                loss = call.func.value
                differentiated = loss.args if isinstance(loss, cst.Call) else [loss]
                names = {n.value for part in differentiated for n in m.findall(part, m.Name())}
                reads.setdefault(source.enclosing_function(call), []).append((source.line(call), names))
        return reads

    @staticmethod
    def _assigned_call_target(line):
        """The name a line such as `loss = model(x, y)` assigns, else None."""
        body = line.body
        if len(body) != 1 or not isinstance(body[0], cst.Assign) or not isinstance(body[0].value, cst.Call):
            return None
        if len(body[0].targets) != 1 or not isinstance(body[0].targets[0].target, cst.Name):
            return None
        return body[0].targets[0].target.value
