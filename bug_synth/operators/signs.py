"""Signs and accumulation: a minus dropped or a subtraction turned into an addition (loss, update,
rotation), += turned into = (a sum overwritten) and = into += (a value never reset)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import dotted, float_value, int_value, name_terms, names_in
from bug_synth.operators.source import Site

SIGN_TERMS = ("sign", "negat", "minus", "plus", "flip", "opposite", "subtract", "revers", "+", "-")
LOOPS = (cst.For, cst.While)


@family
class SignFlipped(Family):
    name = "sign-flipped"
    theme = "signs"
    description = "-e -> e, a - b -> a + b, x -= d <-> x += d"

    def sites(self, source):
        for node in source.nodes(cst.UnaryOperation):
            if isinstance(node.operator, cst.Minus) and float_value(node.expression) is None:
                yield self._site(source, node, node.expression)
        for node in source.nodes(cst.BinaryOperation):
            if isinstance(node.operator, cst.Subtract) and int_value(node.right) is None:
                yield self._site(source, node, node.with_changes(
                    operator=cst.Add(whitespace_before=node.operator.whitespace_before,
                                     whitespace_after=node.operator.whitespace_after)))
        for node in source.nodes(cst.AugAssign):
            flipped = {cst.SubtractAssign: cst.AddAssign, cst.AddAssign: cst.SubtractAssign}.get(type(node.operator))
            if flipped is not None and int_value(node.value) is None:
                operator = flipped(whitespace_before=node.operator.whitespace_before,
                                   whitespace_after=node.operator.whitespace_after)
                yield self._site(source, node, node.with_changes(operator=operator))

    @staticmethod
    def _site(source, node, new):
        return Site(
            node, new,
            f"{source.code(new)} has the wrong sign: {source.code(node)} is meant {source.where(node)}",
            (SIGN_TERMS, names_in(node, limit=3) or ("sign",)))


@family
class AccumulateAssign(Family):
    name = "accumulate-assign"
    theme = "signs"
    description = "x += e -> x = e (the sum is overwritten); in a loop, x = e -> x += e (never reset)"

    def sites(self, source):
        for node in source.nodes(cst.AugAssign):
            if not isinstance(node.operator, cst.AddAssign):
                continue
            target = source.code(node.target)
            yield Site(
                node, cst.Assign(targets=[cst.AssignTarget(node.target)], value=node.value),
                f"{target} is overwritten with {source.code(node.value)} each time instead of accumulating it "
                f"{source.where(node)}",
                (name_terms(dotted(node.target).rsplit(".", 1)[-1] or target),
                 ("accumulat", "overwrit", "+=", "replac", "assign", "instead of adding", "only the last", "sum")))
        assigns = [a for a in source.nodes(cst.Assign) if len(a.targets) == 1 and dotted(a.targets[0].target)]
        first_lines = {}
        for assign in assigns:
            key = (source.enclosing_function(assign), dotted(assign.targets[0].target))
            first_lines.setdefault(key, source.line(assign))
        for node in assigns:
            if not self._reset_in_loop(source, node, first_lines):
                continue
            target = node.targets[0].target
            yield Site(
                node, cst.AugAssign(target=target, operator=cst.AddAssign(), value=node.value),
                f"{source.code(target)} keeps adding up across iterations ({source.code(target)} += ...) instead of "
                f"being set afresh {source.where(node)}",
                (name_terms(dotted(target).rsplit(".", 1)[-1]),
                 ("accumulat", "+=", "reset", "grow", "never reset", "keeps adding", "carr", "previous", "stale")))

    @staticmethod
    def _reset_in_loop(source, assign, first_lines):
        """An assignment inside a loop to a name the same function also assigns before the loop."""
        loop = next((a for a in source.ancestors(assign) if isinstance(a, LOOPS)), None)
        function = source.enclosing_function(assign)
        if loop is None or source.enclosing_function(loop) is not function:
            return False
        first = first_lines.get((function, dotted(assign.targets[0].target)))
        return first is not None and first < source.line(loop)
