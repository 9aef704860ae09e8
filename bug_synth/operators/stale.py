"""Stale values: statements that depend on each other run in the wrong order, so a value is read
before it is updated or after it was meant to be.

* statement-swapped: two adjacent statements trade places where one reads what the other writes:
  softmax before the mask is applied, the optimizer stepped before the learning rate is set, the
  cache's position advanced before the layers write at it;
* statement-moved: the same, with the statement moved two or three places, past statements it
  shares nothing with (backward() before the loss is divided for accumulation);
* loop-carried-reset: a per-iteration reset (total = 0, optimizer.zero_grad()) hoisted above its
  loop, so it runs once and the value carries across iterations;
* init-in-loop: the other way round, an initialisation moved into the loop that builds on it (an
  accumulator, an optimizer, a seeded generator, a batch iterator), so it starts over every time.

Only where the older value exists: a statement that reads a name before anything bound it fails
with a NameError at once, which teaches nothing. Statements that only report (reports.py), and
statements that touch nothing in common (the order changes nothing), are left alone; so are moves
that change nothing a run can show: two sums into one total, a tensor moved to the device it is
on, a path, housekeeping (gc, timing), a loop counter reset inside its loop (it never ends)."""

import dataclasses
import re

import libcst as cst

from bug_synth.operators.accesses import (MODE_CALLS, accesses, bound_before, bound_in, changed_object, conflicts,
                                          find, mentions, target_writes, touch, written_object)
from bug_synth.operators.family import Family, family
from bug_synth.operators.mutant import Mutant
from bug_synth.operators.reports import reported_names, reports_only
from bug_synth.operators.shapes import callee_name, dotted, name_terms
from bug_synth.operators.source import LOG_CALLEES, Reorder, Site, parse, swap

STALE_TERMS = ("before", "after", "order", "stale", "old value", "previous", "too early", "too late", "swap",
               "not yet", "already updated", "outdated", "sequence")
RESET_TERMS = ("reset", "once", "outside the loop", "before the loop", "out of the loop", "hoist", "carr",
               "accumulat", "never reset", "not reset", "each iteration", "every iteration", "every step")
SUNK_TERMS = ("every iteration", "each iteration", "inside the loop", "in the loop", "into the loop", "reset",
              "re-creat", "recreat", "reinitiali", "re-initiali", "start over", "starts over", "afresh", "rebuilt",
              "only the last", "each step", "every step")

# which statements move
COMPOUND = (cst.If, cst.For, cst.While, cst.With)
SMALL = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Expr)
# a block moved with its neighbour stays small: a whole training loop traded with a line is no swap
MAX_LINES = 15
# how far statement-moved moves a statement: further, it is rewritten code, not a slip
MAX_DISTANCE = 3
# calls that tidy up, wait or time: when they run changes nothing a run learns
HOUSEKEEPING = frozenset({"collect", "freeze", "disable", "enable", "synchronize", "barrier", "empty_cache", "sleep",
                          "time", "perf_counter", "mkdir", "makedirs", "flush"})
HOUSEKEEPING_RECEIVERS = frozenset({"gc", "time", "os", "sys", "shutil", "wandb", "logging", "warnings", "signal"})
# names of paths and labels: reading one before it is set fails or names another file, no training bug
TEXT_NAME = re.compile(r".*(path|dir|file|filename|name|tag|url|prefix|suffix)s?", re.IGNORECASE)
DEVICE_MOVES = frozenset({"to", "cuda", "cpu"})
COLLECTIVES = frozenset({"all_reduce", "reduce", "reduce_scatter"})
ADDITIVE = (cst.AddAssign, cst.SubtractAssign)
MULTIPLICATIVE = (cst.MultiplyAssign, cst.DivideAssign)
BRIEF_LIMIT = 60

# resets and initialisations
# what a fresh value is built by: a literal, a container, a tensor of zeros
FRESH_CALLS = frozenset({"list", "dict", "set", "tuple", "float", "int", "Counter", "defaultdict", "OrderedDict",
                         "deque", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "empty",
                         "tensor", "new_zeros", "new_full"})
RESET_METHODS = frozenset({"zero_grad", "zero_", "clear", "reset"})
# counters the loop itself advances: reset at every iteration the loop never ends, which shows nothing
COUNTERS = frozenset({"i", "j", "k", "n", "step", "steps", "epoch", "index", "it", "iteration", "micro_step", "pos"})
# functions that build an object with state of its own (classes too: AdamW, Generator)
BUILDERS = frozenset({"configure_optimizer", "iter", "manual_seed", "default_rng", "build_optimizer",
                      "setup_optimizer", "new_cache"})
# names of random generators: handed to a call, they are drawn from
STATEFUL_NAME = re.compile(r".*(generator|rng|gen)", re.IGNORECASE)


# -- statement-swapped

def _span(source, statement):
    position = source.positions[statement]
    return position.end.line - position.start.line + 1


def _escapes(statement):
    """Whether running the statement may leave its block: a return, a raise, or a break or continue
    of a loop outside it."""
    if find(statement, cst.Return, cst.Raise, cst.FunctionDef, cst.ClassDef):
        return True
    loops = find(statement, cst.For, cst.While)
    inner = {id(n) for loop in loops for n in find(loop.body, cst.Break, cst.Continue)}
    return any(id(n) not in inner for n in find(statement, cst.Break, cst.Continue))


def _computes(source, statement):
    """A statement that does part of the computation: assignments and calls, not a report, a
    docstring, an import or a check; a block of at most MAX_LINES that holds one."""
    return source.memo(("stale computes", id(statement)), lambda s: _computing(s, statement))


def _computing(source, statement):
    if not source.usable(statement):
        return False
    if isinstance(statement, cst.SimpleStatementLine):
        if not all(isinstance(s, SMALL) for s in statement.body) or reports_only(source, statement):
            return False
        return all(not isinstance(s, cst.Expr) or (isinstance(s.value, cst.Call) and source.usable(s.value)
                                                   and not _housekeeping(s.value)) for s in statement.body)
    if not isinstance(statement, COMPOUND) or _span(source, statement) > MAX_LINES or _escapes(statement):
        return False
    inner = find(statement, cst.SimpleStatementLine)
    return any(_computes(source, line) for line in inner)


def _housekeeping(call):
    return (callee_name(call) in HOUSEKEEPING
            or dotted(call.func).split(".")[0] in HOUSEKEEPING_RECEIVERS)


def _reporting(source, statement):
    """In a function that writes a report (a log formatter's format())."""
    function = source.enclosing_function(statement)
    return function is not None and function.name.value in LOG_CALLEES


def _accumulation(statement):
    """(path, kind of operator) when the statement is a single x += e (or *=, -=, /=) whose e does
    not read x: two such on one x give the same sum in either order."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.AugAssign) or not dotted(small.target):
        return None
    path = dotted(small.target)
    if any(dotted(n) == path for n in find(small.value, cst.Name, cst.Attribute)):
        return None
    kind = "add" if isinstance(small.operator, ADDITIVE) else "mul" if isinstance(small.operator, MULTIPLICATIVE) else None
    return None if kind is None else (path, kind)


def _collective(statement):
    """The path a statement all-reduces (summing) in place, or None."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    call = statement.body[0].value if isinstance(statement.body[0], cst.Expr) else None
    if not isinstance(call, cst.Call) or callee_name(call) not in COLLECTIVES or not call.args:
        return None
    ops = [arg.value for arg in call.args if arg.keyword is not None and arg.keyword.value == "op"]
    if any(not mentions(op, "SUM") for op in ops):
        return None
    return dotted(call.args[0].value) or None


def _commute(first, second):
    """Two statements that give the same result in either order: two sums (or products) into one
    value, or a scale and a summing all-reduce of it."""
    a, b = _accumulation(first), _accumulation(second)
    if a is not None and a == b:
        return True
    for x, y in ((first, second), (second, first)):
        scaled, reduced = _accumulation(x), _collective(y)
        if scaled is not None and scaled[1] == "mul" and scaled[0] == reduced:
            return True
    return False


def _device_move(statement):
    """x = x.to(device), or x, y = x.to(device), y.to(device): on one device, a no-op."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return False
    target, value = small.targets[0].target, small.value
    pairs = (list(zip([e.value for e in target.elements], [e.value for e in value.elements]))
             if isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple) else [(target, value)])
    return all(isinstance(v, cst.Call) and callee_name(v) in DEVICE_MOVES and isinstance(v.func, cst.Attribute)
               and dotted(v.func.value) == dotted(t) and all("device" in dotted(a.value) or isinstance(
                   a.value, cst.SimpleString) for a in v.args) for t, v in pairs)


class _Elided(cst.CSTTransformer):
    """Every call's arguments as `...`: f(...)."""

    def leave_Call(self, original_node, updated_node):
        return updated_node.with_changes(args=[cst.Arg(cst.Ellipsis())]) if updated_node.args else updated_node


def _short(source, node):
    """Code for a cause sentence: as written when short, with calls' arguments elided when not,
    else "..."."""
    for code in (source.code(node), source.code(node.visit(_Elided()))):
        if len(code) <= BRIEF_LIMIT and "\n" not in code:
            return code
    return "..."


def _header(source, statement):
    """A block's first line without its colon and comment, cut short: for block in self.blocks."""
    if isinstance(statement, (cst.If, cst.While)):
        header = f"{'if' if isinstance(statement, cst.If) else 'while'} {source.code(statement.test)}"
    elif isinstance(statement, cst.For):
        header = f"for {source.code(statement.target)} in {source.code(statement.iter)}"
    else:
        header = "with " + ", ".join(source.code(item) for item in statement.items)
    header = " ".join(header.split())
    return header if len(header) <= BRIEF_LIMIT else header[:BRIEF_LIMIT].rsplit(" ", 1)[0] + " ..."


def _brief(source, statement):
    """A statement for a cause sentence: as written when short, with calls' arguments elided when
    not (x = x + self.attn(...)), or its target and callee; a block by its header."""
    if isinstance(statement, COMPOUND):
        kind = "loop" if isinstance(statement, (cst.For, cst.While)) else "block"
        return f"the {kind} `{_header(source, statement)}`"
    return "`" + "; ".join(_brief_small(source, small) for small in statement.body) + "`"


def _brief_small(source, small):
    shown = _short(source, small)
    if shown != "...":
        return shown
    value = small.value
    called = f"{_short(source, value.func)}(...)" if isinstance(value, cst.Call) else "..."
    if isinstance(small, cst.Assign):
        return " = ".join(source.code(t.target) for t in small.targets) + f" = {called}"
    if isinstance(small, cst.AugAssign):
        return f"{source.code(small.target)} {source.code(small.operator).strip()} {called}"
    if isinstance(small, cst.AnnAssign):
        return f"{source.code(small.target)} = {called}"
    return called


def _listed(paths):
    return paths[0] if len(paths) == 1 else ", ".join(paths[:-1]) + " and " + paths[-1]


def _unique(paths):
    return list(dict.fromkeys(paths))


def _old_value_exists(source, first, stale, writes):
    """Whether each thing `first` binds that `second` reads was bound before `first` already: the
    swapped `second` then reads an older value instead of failing at once. An attribute set in
    __init__ exists only once __init__ has set it; elsewhere, as far as a statement can tell, it does."""
    bound = None
    function = source.enclosing_function(first)
    in_init = function is not None and function.name.value == "__init__"
    for written, _ in stale:
        if writes[written] != "bind" or ("." in written and not (in_init and written.startswith("self."))):
            continue
        bound = bound_before(source, first) if bound is None else bound
        if written not in bound:
            return False
    return True


def _dependence(source, earlier, later):
    """What goes wrong when `later` runs before `earlier`: ([paths later now reads stale], [paths
    later now updates before earlier reads them]); None when nothing does, or what does is no
    training bug (a path, a device move, two sums into one total), or a name read has no older
    value (a NameError at once)."""
    before, after = accesses(source, earlier), accesses(source, later)
    stale = conflicts(before, after)
    early = conflicts(after, before)
    if not stale and not early or _commute(earlier, later) or _device_move(earlier) or _device_move(later):
        return None  # (a tensor used before it is moved: on one device nothing changes, on two a crash)
    if any(TEXT_NAME.fullmatch(w.rsplit(".", 1)[-1]) for w, _ in stale + early):
        return None
    if stale and not _old_value_exists(source, earlier, stale, before.writes):
        return None
    return _unique(w for w, _ in stale), _unique(w for w, _ in early)


def _cause(source, earlier, later, dependence, head, later_leads):
    """`head` (what runs where), then what it reads too early or what is updated too early."""
    stale, early = dependence
    paths = stale or early
    one = len(paths) == 1
    it, is_ = ("it", "is") if one else ("them", "are")
    reader = "it" if later_leads else _brief(source, later)
    mode = _mode(earlier if stale else later, paths)
    if mode and stale:
        return f"{head}, so {reader} runs {_listed(paths)} before {it} {is_} switched to {mode} mode"
    if mode:
        return f"{head}, so {_listed(paths)} {is_} already in {mode} mode when {_brief(source, earlier)} runs {it}"
    if stale:
        return (f"{head}, so {reader} reads {_listed(paths)} before {'it is' if one else 'they are'} updated: "
                f"{'its' if one else 'their'} stale value{'' if one else 's'} {is_} used")
    return f"{head}, so {_listed(paths)} {is_} already updated when {_brief(source, earlier)} reads {it}"


def _mode(statement, paths):
    """"train" or "eval" when all `statement` does to `paths` is switch their mode, else None."""
    calls = [c for c in find(statement, cst.Call) if changed_object(c) in paths]
    modes = {callee_name(c) for c in calls}
    return modes.pop() if len(modes) == 1 and modes <= MODE_CALLS else None


def _terms(source, earlier, later, dependence):
    stale, early = dependence
    paths = stale or early
    names = tuple(dict.fromkeys(t for p in paths[:3] for t in name_terms(p.rsplit(".", 1)[-1])))
    mode = _mode(earlier if stale else later, paths)
    return names, STALE_TERMS + ((mode, "mode", "dropout") if mode else ())


def _blocks(source):
    # a script's own statements are the module's (nanochat's training loop)
    for block in [*source.nodes(cst.IndentedBlock), source.module]:
        yield list(block.body)


@family
class StatementSwapped(Family):
    name = "statement-swapped"
    theme = "stale"
    description = ("two adjacent statements that depend on each other swapped: softmax before the mask is applied, "
                   "the cache position advanced before the layers write at it")

    def sites(self, source):
        for body in _blocks(source):
            for first, second in zip(body, body[1:]):
                if not (_computes(source, first) and _computes(source, second)) or _reporting(source, first):
                    continue
                dependence = _dependence(source, first, second)
                if dependence is not None:
                    head = f"{_brief(source, second)} runs before {_brief(source, first)} {source.where(first)}"
                    yield swap(first, second, _cause(source, first, second, dependence, head, True),
                               _terms(source, first, second, dependence))


@family
class StatementMoved(Family):
    name = "statement-moved"
    theme = "stale"
    description = ("a statement moved two or three places, past one it depends on: backward() before the loss is "
                   "divided, model.train() before the evaluation loop")

    def sites(self, source):
        for body in _blocks(source):
            for i, earlier in enumerate(body):
                if not _computes(source, earlier) or _reporting(source, earlier):
                    continue
                for j in range(i + 2, min(i + MAX_DISTANCE + 1, len(body))):
                    yield from self._moves(source, body[i:j + 1])

    @staticmethod
    def _moves(source, span):
        """The last statement of the span moved up before the first, and the first moved down after
        the last, where the moved one depends on the other and on nothing it passes."""
        earlier, later, between = span[0], span[-1], span[1:-1]
        if not _computes(source, later) or not all(_passable(source, s) for s in between):
            return
        dependence = _dependence(source, earlier, later)
        if dependence is None:
            return
        where, n = source.where(earlier), len(span) - 1
        for moved, order, head, leads in (
                (later, (n, *range(n)), f"{_brief(source, later)} runs before {_brief(source, earlier)} {where} "
                                        f"instead of after it", True),
                (earlier, (*range(1, n + 1), 0), f"{_brief(source, earlier)} runs after {_brief(source, later)} "
                                                 f"{where} instead of before it", False)):
            if not any(touch(source, moved, s) for s in between):
                yield Reorder(tuple(span), order, moved, _cause(source, earlier, later, dependence, head, leads),
                              _terms(source, earlier, later, dependence))


def _passable(source, statement):
    """A statement a moved one may pass: it runs to its end (no return, break or raise)."""
    return (source.usable(statement) and isinstance(statement, (cst.SimpleStatementLine, *COMPOUND))
            and not _escapes(statement))


# -- loop-carried-reset

def _fresh(node):
    """A value made afresh: a literal, an empty container, float("inf"), torch.zeros(...)."""
    if isinstance(node, cst.UnaryOperation):
        return _fresh(node.expression)
    if isinstance(node, cst.Name):
        return node.value in ("None", "True", "False")
    if isinstance(node, (cst.List, cst.Set, cst.Tuple, cst.Dict, cst.ListComp, cst.SetComp, cst.DictComp)):
        return True  # a new container, whatever it starts with
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        return _fresh(node.left)  # [False] * n
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    return isinstance(node, cst.Call) and callee_name(node) in FRESH_CALLS


def _reset(statement):
    """(kind, paths) for a statement that sets values afresh: ("value", names) for x = 0, x = [],
    buf = torch.zeros(...), a, b = 0, 0; ("grad", (receiver,)) for optimizer.zero_grad();
    ("call", (receiver,)) for buf.zero_() or seen.clear(). None for any other statement."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target, value = small.targets[0].target, small.value
        if isinstance(target, cst.Name) and _fresh(value):
            return "value", (target.value,)
        if (isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple) and len(target.elements) == len(value.elements)
                and all(isinstance(e.value, cst.Name) and _fresh(v.value) for e, v in zip(target.elements, value.elements))):
            return "value", tuple(e.value.value for e in target.elements)
        return None
    call = small.value if isinstance(small, cst.Expr) else None
    if (not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute)
            or not written_object(call.func.value)):
        return None
    if callee_name(call) == "zero_grad":
        return "grad", (written_object(call.func.value),)
    return ("call", (written_object(call.func.value),)) if callee_name(call) in RESET_METHODS else None


def _accumulated(loop, statement, path, in_place=True):
    """Whether the loop, beside `statement`, builds on what `path` holds: path += e,
    path = f(path), and (with `in_place`) path.append(e), path[i] = e, path.add_(e)."""
    skipped = {id(n) for n in find(statement, cst.AugAssign, cst.Assign, cst.Call)}
    for node in find(loop, cst.AugAssign, cst.Assign, cst.Call):
        if id(node) in skipped:
            continue
        if isinstance(node, cst.AugAssign) and written_object(node.target) == path:
            return True
        if in_place and isinstance(node, cst.Call) and changed_object(node) == path:
            return True
        if isinstance(node, cst.Assign):
            for target in node.targets:
                written = target_writes(target.target)
                if in_place and (path, "update") in written:
                    return True
                if (path, "bind") in written and any(dotted(n) == path for n in find(node.value, cst.Name)):
                    return True
    return False


def _quiet(statement):
    """A statement without the comments that narrated it where it was."""
    whitespace = statement.trailing_whitespace
    if whitespace.comment is not None:
        whitespace = whitespace.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None)
    return statement.with_changes(leading_lines=(), trailing_whitespace=whitespace)


def _comment_run(lines):
    """The comment lines directly above a statement (the splice cuts them and writes them again)."""
    run = []
    for line in reversed(lines):
        if line.comment is None:
            break
        run.insert(0, line)
    return run


def _without(loop, statement):
    """The loop with `statement` taken out of its body."""
    body = [s for s in loop.body.body if s is not statement]
    if loop.body.body[0] is statement:
        body[0] = body[0].with_changes(leading_lines=[ln for ln in body[0].leading_lines if ln.comment is not None])
    return loop.with_changes(body=loop.body.with_changes(body=body), leading_lines=_comment_run(loop.leading_lines))


@family
class LoopCarriedReset(Family):
    name = "loop-carried-reset"
    theme = "stale"
    description = ("a per-iteration reset hoisted above its loop (total = 0, optimizer.zero_grad()): it runs once, "
                   "so the value carries across iterations")

    def sites(self, source):
        for loop in source.nodes(cst.For, cst.While):
            if not isinstance(loop.body, cst.IndentedBlock) or len(loop.body.body) < 2:
                continue
            bound = None
            for statement in loop.body.body:
                reset = _reset(statement)
                if reset is None or not source.usable(statement) or reports_only(source, statement):
                    continue
                bound = bound_in(loop) if bound is None else bound
                read = {n.value for n in find(statement.body[0], cst.Name) if source.is_load(n)
                        and not (isinstance(source.parent(n), cst.Attribute) and source.parent(n).attr is n)}
                if read & bound:
                    continue
                site = self._site(source, loop, statement, *reset)
                if site is not None:
                    yield site

    @staticmethod
    def _site(source, loop, statement, kind, paths):
        if kind == "grad":
            if not any(isinstance(c.func, cst.Attribute) and callee_name(c) == "backward" for c in find(loop, cst.Call)):
                return None
            consequence = "gradients are never zeroed between steps and accumulate"
            terms = ("zero_grad", "zero grad", "zeroed", "gradients accumulate", "grad")
        else:
            kept = [p for p in paths if _accumulated(loop, statement, p)]
            if not kept:
                return None
            verb = "is" if len(kept) == 1 else "are"
            consequence = f"{_listed(kept)} {verb} never reset and carr{'ies' if len(kept) == 1 else 'y'} over"
            terms = tuple(dict.fromkeys(t for p in kept for t in name_terms(p.rsplit(".", 1)[-1])))
        code, header = source.code(statement.body[0]), _header(source, loop)
        return Site(
            loop, (_quiet(statement), _without(loop, statement)),
            f"`{_brief_small(source, statement.body[0])}` runs once before the loop `{header}` instead of at every "
            f"iteration {source.where(loop)}, so {consequence} from one iteration to the next",
            (terms, RESET_TERMS), shown=(f"{header}:\n    {code}", f"{code}\n{header}:"))


# -- init-in-loop

@dataclasses.dataclass(frozen=True)
class _Sink:
    """An initialisation moved from before a loop (past the statements `between`) into the top of
    its body."""
    statement: cst.SimpleStatementLine
    between: tuple
    loop: cst.BaseCompoundStatement
    cause: str
    cause_terms: tuple


def _targets(statement):
    """The names a one-assignment line binds to values that do not read them: x = 0,
    a, b = [], [], optimizer = AdamW(...); () for anything else."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return ()
    small = statement.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return ()
    target = small.targets[0].target
    names = [target] if isinstance(target, cst.Name) else (
        [e.value for e in target.elements] if isinstance(target, cst.Tuple) else [])
    if not names or not all(isinstance(n, cst.Name) for n in names):
        return ()
    return tuple(n.value for n in names)


def _uses_state(loop, name):
    """Whether the loop draws on what `name` holds as it goes: next(name), or a generator handed to
    a call (torch.randperm(n, generator=name), sample(logits, rng))."""
    for call in find(loop, cst.Call):
        arguments = [arg for arg in call.args if dotted(arg.value) == name]
        if not arguments:
            continue
        if callee_name(call) == "next" or STATEFUL_NAME.fullmatch(name):
            return True
        if any(arg.keyword is not None and arg.keyword.value in ("generator", "rng") for arg in arguments):
            return True
    return False


def _header_reads(loop):
    header = loop.test if isinstance(loop, cst.While) else loop.iter
    return {n.value for n in find(header, cst.Name)}


@family
class InitInLoop(Family):
    name = "init-in-loop"
    theme = "stale"
    description = ("an initialisation moved into the loop that builds on it (total = 0, a seeded generator, an "
                   "optimizer): it is redone at every iteration")

    def mutants(self, path, text):
        # the edit spans the statements from the initialisation to the loop, which a Site or a
        # Reorder cannot say: the splice is Source's own
        source = parse(path, text)
        if source is None:
            return
        for sink in self.sites(source):
            mutant = _sunk(source, self.name, sink)
            if mutant is not None:
                yield mutant

    def sites(self, source):
        for body in _blocks(source):
            for index, loop in enumerate(body):
                if (isinstance(loop, (cst.For, cst.While)) and isinstance(loop.body, cst.IndentedBlock)
                        and source.usable(loop)):
                    yield from self._sinks(source, body[:index], loop)

    @staticmethod
    def _sinks(source, before, loop):
        bound, header = None, _header_reads(loop)
        for k in range(len(before) - 1, -1, -1):
            statement, between = before[k], before[k + 1:]
            names = _targets(statement)
            # a counter or what the loop's header reads, reset inside it, makes a loop that never ends
            if not names or any(n in COUNTERS or n in header for n in names):
                continue
            if not source.usable(statement) or reports_only(source, statement):
                continue
            if any(mentions(s, n) for s in between for n in names) or any(
                    touch(source, statement, s) or not _passable(source, s) for s in between):
                continue
            bound = bound_in(loop) if bound is None else bound
            value = statement.body[0].value
            if {n.value for n in find(value, cst.Name) if source.is_load(n)} & bound or _draws(value):
                continue
            reported = reported_names(source)
            # a value computed (a view, an embedding) is only rebuilt where the loop rebinds it
            in_place = all(_fresh(v) or _builds_state(v) for v in _values(value))
            built = [n for n in names if n not in reported and _accumulated(loop, statement, n, in_place)
                     and not _reset_in(loop, n) and not _stops(loop, n)]
            drawn = [n for n in names if n not in built and _uses_state(loop, n)]
            if built or drawn:
                yield _Sink(statement, tuple(between), loop, _sink_cause(source, statement, loop, built, drawn),
                            (tuple(dict.fromkeys(t for n in built + drawn for t in name_terms(n))), SUNK_TERMS))


def _draws(value):
    """Whether computing the value draws on state it is handed (a generator, a list it fills):
    done at every iteration, it does more than start afresh."""
    return any(STATEFUL_NAME.fullmatch(dotted(arg.value) or "") for call in find(value, cst.Call)
               for arg in call.args)


def _reset_in(loop, name):
    """Whether the loop body sets `name` afresh itself (step_loss = torch.zeros(...)): the value
    before the loop is only a placeholder."""
    for statement in loop.body.body:
        small = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) else None
        if isinstance(small, cst.Assign) and name in _targets(statement) and not mentions(small.value, name):
            return True
    return False


def _sink_cause(source, statement, loop, built, drawn):
    """What redoing the initialisation at every iteration loses: a sum or list's earlier parts, an
    optimizer's or generator's state, or the updates a value took (x = block(x))."""
    values = _values(statement.body[0].value)
    names = built + drawn
    one = len(names) == 1
    fresh = all(_fresh(v) for v in values)
    if drawn or not fresh and any(_builds_state(v) for v in values):
        consequence = (f"{_listed(names)} {'is' if one else 'are'} built anew each time and "
                       f"{'its' if one else 'their'} state starts over at every iteration")
    elif fresh:
        consequence = (f"{_listed(names)} start{'s' if one else ''} afresh each time and only the last "
                       f"iteration's part is kept")
    else:
        consequence = (f"{_listed(names)} {'is' if one else 'are'} set again at every iteration and only the last "
                       f"iteration's update of {'it' if one else 'them'} is kept")
    return (f"`{_brief_small(source, statement.body[0])}` runs at the start of every iteration of the loop "
            f"`{_header(source, loop)}` instead of once before it {source.where(statement)}, so {consequence}")


def _values(value):
    return [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]


def _stops(loop, name):
    """Whether the loop breaks on a test of `name` (if num_generated >= max_tokens: break): reset
    at every iteration, it would never stop."""
    for branch in find(loop, cst.If):
        breaks = any(isinstance(s, cst.SimpleStatementLine) and any(isinstance(b, cst.Break) for b in s.body)
                     for s in branch.body.body) if isinstance(branch.body, cst.IndentedBlock) else False
        if breaks and mentions(branch.test, name):
            return True
    return False


def _builds_state(value):
    """An object with state of its own: an optimizer, a generator, a scaler (a class is called)."""
    return any(callee_name(call)[:1].isupper() or callee_name(call) in BUILDERS for call in find(value, cst.Call))


def _sunk(source, family, sink):
    """The Mutant for a _Sink: the statements from the initialisation to the loop spliced anew."""
    statement, loop = sink.statement, sink.loop
    body = loop.body.with_changes(body=[_quiet(statement), *loop.body.body])
    replacement = (*sink.between, loop.with_changes(body=body))
    statements = (statement, *sink.between, loop)
    # compared from the loop (one statement of a script each)
    text = source.spliced_text(statements, replacement, source.line(loop))
    if text is None:
        return None
    header, code = _header(source, loop), source.code(statement.body[0])
    indented = "\n".join("    " + line for line in code.splitlines())
    return Mutant(family=family, file=source.path, line=source.line(statement), function=source.function(statement),
                  before=f"{code}\n{header}:", after=f"{header}:\n{indented}", text=text, cause=sink.cause,
                  cause_terms=sink.cause_terms)
