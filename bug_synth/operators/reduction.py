"""Reductions: a sum where a mean is meant (and the reverse), and an accumulated value no longer
divided by the number of micro-batches or ranks (loss / grad_accum_steps dropped)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, is_method_call, names_in
from bug_synth.operators.source import Site

SWAP = {"mean": "sum", "sum": "mean"}
# a divisor that counts what was summed (micro-batches, ranks, tokens): not a temperature or scale
COUNT_WORDS = ("accum", "world", "micro", "steps", "num", "count", "size", "total", "n_", "tokens")
SUM_MEAN_TERMS = ("sum", "mean", "averag", "reduction")
EFFECT = {"sum": "grows with the number of elements it reduces", "mean": "is divided by the number of elements"}


def _counts(divisor):
    name = dotted(divisor).rsplit(".", 1)[-1].lower()
    return any(word in name for word in COUNT_WORDS)


@family
class SumMeanSwapped(Family):
    name = "sum-mean-swapped"
    theme = "reduction"
    description = ".mean() <-> .sum(), reduction=\"mean\" <-> \"sum\""

    def sites(self, source):
        for call in source.nodes(cst.Call):
            name = callee_name(call)
            if name in SWAP and isinstance(call.func, cst.Attribute) and (is_method_call(call) or
                                                                          dotted(call.func.value) == "torch"):
                new = SWAP[name]
                yield Site(
                    call, call.with_changes(func=call.func.with_changes(attr=cst.Name(new))),
                    f"{new} is taken where {name} is meant {source.where(call)}, so the result {EFFECT[new]}",
                    (SUM_MEAN_TERMS, ("instead", "scale", "divid", "number of", "count", "batch size", "magnitude",
                                      "normaliz", "too large", "too small") + names_in(call.func.value, limit=2)))
        for arg in source.nodes(cst.Arg):
            if arg.keyword is None or not arg.keyword.value.endswith("reduction"):
                continue
            value = arg.value
            if not isinstance(value, cst.SimpleString) or value.evaluated_value not in SWAP:
                continue
            old = value.evaluated_value
            new = SWAP[old]
            quote = value.quote
            yield Site(
                value, cst.SimpleString(f"{quote}{new}{quote}"),
                f"{arg.keyword.value}={new!r} is passed where {old!r} is meant {source.where(arg)}, so the loss "
                f"{EFFECT[new]}",
                (SUM_MEAN_TERMS, ("instead", "scale", "divid", "number of", "count", "batch size", "magnitude",
                                  "normaliz", "too large", "too small", "reduction")))


@family
class AccumulationUnscaled(Family):
    name = "accumulation-unscaled"
    theme = "reduction"
    description = "loss = loss / grad_accum_steps (or /= world_size) removed: a sum where a mean is meant"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            parts = self._self_division(line)
            if parts is None:
                continue
            name, divisor = parts
            yield Site(
                line, None,
                f"{name} is no longer divided by {source.code(divisor)} {source.where(line)}, so it is a sum, "
                f"{source.code(divisor)} times too large, where a mean is meant",
                (names_in(divisor, limit=2) + ("accum", "world size", "micro"),
                 ("divid", "scale", "scaling", "normaliz", "mean", "averag", "sum", "too large", "times")))
        for division in source.nodes(cst.BinaryOperation):
            left = division.left
            if (not isinstance(division.operator, cst.Divide) or not isinstance(left, cst.Name)
                    or "loss" not in left.value or not isinstance(division.right, (cst.Name, cst.Attribute))
                    or not _counts(division.right)
                    or self._assigns_to_itself(source, division)):
                continue
            yield Site(
                division, left,
                f"{left.value} is no longer divided by {source.code(division.right)} {source.where(division)}, so "
                f"it is {source.code(division.right)} times too large",
                (names_in(division.right, limit=2) + ("accum", "world size", "micro"),
                 ("divid", "scale", "scaling", "normaliz", "mean", "averag", "sum", "too large", "times")))

    @staticmethod
    def _self_division(line):
        """(name, divisor) for `n = n / d` or `n /= d` with a name or attribute d, else None."""
        if len(line.body) != 1:
            return None
        statement = line.body[0]
        if isinstance(statement, cst.AugAssign) and isinstance(statement.operator, cst.DivideAssign):
            target, divisor = statement.target, statement.value
        elif (isinstance(statement, cst.Assign) and len(statement.targets) == 1
              and isinstance(statement.value, cst.BinaryOperation)
              and isinstance(statement.value.operator, cst.Divide)
              and dotted(statement.value.left) and dotted(statement.value.left) == dotted(statement.targets[0].target)):
            target, divisor = statement.targets[0].target, statement.value.right
        else:
            return None
        if not dotted(target) or not isinstance(divisor, (cst.Name, cst.Attribute)) or not _counts(divisor):
            return None
        return dotted(target), divisor

    @staticmethod
    def _assigns_to_itself(source, division):
        parent = source.parent(division)
        return (isinstance(parent, cst.Assign) and len(parent.targets) == 1
                and dotted(parent.targets[0].target) == dotted(division.left))
