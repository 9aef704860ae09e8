"""Statements left out: a step of the computation that updates a value in place (q = rotary(q),
x = norm(x)), one of the pairs of a parallel assignment, a call made for its effect (set_epoch,
load_state_dict, advance), or an `if` that only makes such calls."""

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, dotted, name_terms, names_in
from bug_synth.operators.source import Site

MISSING_TERMS = ("missing", "skipped", "never", "not applied", "not called", "removed", "dropped", "without",
                 "forgot", "no longer")


def _single(line, kind):
    """The only small statement of a simple statement line, when it is a `kind`; else None."""
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and isinstance(line.body[0], kind):
        return line.body[0]
    return None


def _target_names(assign):
    """The names an assignment binds, when its one target is a name or a tuple of names; else ()."""
    if len(assign.targets) != 1:
        return ()
    target = assign.targets[0].target
    if isinstance(target, cst.Name):
        return (target.value,)
    if isinstance(target, cst.Tuple) and all(isinstance(e.value, cst.Name) for e in target.elements):
        return tuple(e.value.value for e in target.elements)
    return ()


def _call_statement(source, line):
    """The call a line makes for its effect (`loader.sampler.set_epoch(epoch)`), else None; a
    print or log call is no part of the computation."""
    expression = _single(line, cst.Expr)
    if expression is None or not isinstance(expression.value, cst.Call) or not source.usable(expression.value):
        return None
    return expression.value


@family
class TransformDropped(Family):
    name = "transform-dropped"
    theme = "statements"
    description = "a step that updates values in place is missing: q, k = rotary(q), rotary(k); x = norm(x)"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            assign = _single(line, cst.Assign)
            names = () if assign is None else _target_names(assign)
            read = {n.value for n in m.findall(assign.value, m.Name()) if source.is_load(n)} if names else set()
            if not names or not all(name in read for name in names):
                continue
            shown = ", ".join(names)
            yield Site(
                line, None,
                f"{source.code(line)} is missing {source.where(line)}: {shown} "
                f"{'goes' if len(names) == 1 else 'go'} on without it",
                (tuple(t for t in names_in(assign.value, limit=4) if t not in names) or name_terms(names[0]),
                 MISSING_TERMS))


@family
class TupleElementDropped(Family):
    name = "tuple-element-dropped"
    theme = "statements"
    description = "one pair of a parallel assignment left out: q, k = f(q), g(k) -> q = f(q)"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            assign = _single(line, cst.Assign)
            if assign is None or len(assign.targets) != 1:
                continue
            target, value = assign.targets[0].target, assign.value
            if not (isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple)
                    and len(target.elements) == len(value.elements) >= 2):
                continue
            if any(isinstance(e, cst.StarredElement) for e in (*target.elements, *value.elements)):
                continue
            for k in range(len(target.elements)):
                yield self._without(source, line, assign, k)

    @staticmethod
    def _without(source, line, assign, k):
        target, value = assign.targets[0].target, assign.value
        kept_targets = [e for i, e in enumerate(target.elements) if i != k]
        kept_values = [e for i, e in enumerate(value.elements) if i != k]
        if len(kept_targets) == 1:
            new_target, new_value = kept_targets[0].value, kept_values[0].value
        else:
            last = cst.MaybeSentinel.DEFAULT
            new_target = target.with_changes(elements=[*kept_targets[:-1], kept_targets[-1].with_changes(comma=last)])
            new_value = value.with_changes(elements=[*kept_values[:-1], kept_values[-1].with_changes(comma=last)])
        new = assign.with_changes(targets=[assign.targets[0].with_changes(target=new_target)], value=new_value)
        dropped_target = source.code(target.elements[k].value)
        dropped_value = source.code(value.elements[k].value)
        return Site(
            assign, new,
            f"{dropped_target} is no longer set to {dropped_value} {source.where(line)}: it keeps the value it "
            f"had before",
            (name_terms(dotted(target.elements[k].value).rsplit(".", 1)[-1] or dropped_target)
             + names_in(value.elements[k].value, limit=2),
             MISSING_TERMS + ("keeps", "previous", "stale", "not updated", "not reset", "only")))


@family
class CallDropped(Family):
    name = "call-dropped"
    theme = "statements"
    description = "a call made for its effect is missing (set_epoch, load_state_dict, advance), or an if of them"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            call = _call_statement(source, line)
            if call is not None:
                yield self._site(source, line, [call])
        for branch in source.nodes(cst.If):
            body = branch.body.body if isinstance(branch.body, cst.IndentedBlock) else ()
            calls = [_call_statement(source, s) for s in body]
            if branch.orelse is None and calls and all(c is not None for c in calls):
                yield self._site(source, branch, calls)

    @staticmethod
    def _site(source, statement, calls):
        shown = "; ".join(source.code(c) for c in calls)
        terms = tuple(dict.fromkeys(callee_name(c).lower() for c in calls if callee_name(c)))
        return Site(
            statement, None,
            f"{shown} {'is' if len(calls) == 1 else 'are'} never called {source.where(statement)}",
            (terms or ("call",), MISSING_TERMS))
