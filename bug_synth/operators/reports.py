"""Statements that only report or check: an assert, an assignment to names whose every read is in a
print/log call or an f-string, or in computing another such name (dt = time.time() - t0;
tok_per_sec = tokens / dt; print0(...)), and the body of a function that measures for a report
(estimate_flops, get_peak_flops). A wrong value there changes a log line or a check, never what is
trained, so the families that edit arithmetic, conditions and literals leave them alone."""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.source import is_message_call

ASSIGNS = (cst.Assign, cst.AugAssign, cst.AnnAssign)
# functions that measure for a report: estimate_flops, get_peak_flops, estimate_mfu
MEASURING = re.compile(r"(?:^|_)(?:estimate|flops|mfu|throughput|bandwidth|benchmark)(?:_|$)")


def _targets(statement):
    """The names a one-statement line of assignment binds (a, b = ... included), or None when it
    binds anything else (an attribute, a subscript) or is no assignment."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, ASSIGNS):
        return None
    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
    names = []
    for target in targets:
        elements = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
        if not all(isinstance(e, cst.Name) for e in elements):
            return None
        names += [e.value for e in elements]
    return frozenset(names)


def _in_report(source, node):
    return any(isinstance(a, cst.FormattedString) or is_message_call(a) for a in source.ancestors(node))


def _reported_names(source):
    """Names of the file that are only ever reported (by name across the whole file: a name some
    function reads for real is read for real everywhere, which errs toward keeping sites)."""
    uses = {}  # name -> for each read: the names it feeds, or None for a real use
    for name in m.findall(source.module, m.Name()):
        parent = source.parent(name)
        if not source.is_load(name) or (isinstance(parent, cst.Attribute) and parent.attr is name):
            continue  # cache.pos reads no variable pos
        if _in_report(source, name):
            feeds = frozenset()
        else:
            feeds = _targets(source.enclosing_statement(name))
        uses.setdefault(name.value, []).append(feeds)
    assigned, exported = set(), set()
    for statement in m.findall(source.module, m.SimpleStatementLine()):
        assigned |= _targets(statement) or set()
        if source.enclosing_function(statement) is None:
            exported |= _targets(statement) or set()
    # a local never read is no part of training either; a module's name may be read by another file
    reported = {name for name in assigned if name in uses or name not in exported}
    changed = True
    while changed:
        kept = {name for name in reported
                if all(feeds is not None and feeds <= reported for feeds in uses.get(name, ()))}
        changed, reported = kept != reported, kept
    return frozenset(reported)


def reports_only(source, node):
    """Whether the statement that holds `node` only reports or checks, or its function measures."""
    function = source.enclosing_function(node)
    if function is not None and MEASURING.search(function.name.value.lower()):
        return True
    statement = source.enclosing_statement(node)
    if isinstance(statement, cst.SimpleStatementLine) and any(isinstance(s, cst.Assert) for s in statement.body):
        return True
    names = _targets(statement)
    return bool(names) and names <= reported_names(source)


def reported_names(source):
    """The file's names that are only ever reported (computed once per file)."""
    return source.memo("reported-names", _reported_names)
