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

from bug_synth.operators.family import Family, family
from bug_synth.operators.mutant import Mutant
from bug_synth.operators.reports import reported_names, reports_only
from bug_synth.operators.shapes import callee_name, dotted, name_terms, positional
from bug_synth.operators.source import LOG_CALLEES, Reorder, Site, parse, swap

STALE_TERMS = ("before", "after", "order", "stale", "old value", "previous", "too early", "too late", "swap",
               "not yet", "already updated", "outdated", "sequence")
RESET_TERMS = ("reset", "once", "outside the loop", "before the loop", "out of the loop", "hoist", "carr",
               "accumulat", "never reset", "not reset", "each iteration", "every iteration", "every step")
SUNK_TERMS = ("every iteration", "each iteration", "inside the loop", "in the loop", "into the loop", "reset",
              "re-creat", "recreat", "reinitiali", "re-initiali", "start over", "starts over", "afresh", "rebuilt",
              "only the last", "each step", "every step")

# what a statement reads and writes
# methods that change the object they are called on (besides in-place tensor ops, which end in _)
MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "update", "add", "discard",
                      "setdefault", "sort", "reverse", "set_epoch", "step", "zero_grad", "advance", "train", "eval",
                      "load_state_dict", "reset"})
# functions that change their first argument: dist.all_reduce(t) (and torch.nn.init.normal_(w))
IN_PLACE_FUNCTIONS = frozenset({"all_reduce", "broadcast", "reduce", "all_reduce_coalesced"})
# module receivers: torch.nn.init.normal_(w) changes w, not torch.nn.init
MODULES = frozenset({"torch", "nn", "F", "np", "numpy", "math", "init", "dist", "functional"})
# what a module's mode changes: only its calls, not its parameters, config or device
MODE_CALLS = frozenset({"train", "eval"})
# functions that run the model they are given (language_model_metrics(model, ...)), unlike
# configure_optimizer(model) or Engine(model)
RUNNING = re.compile(r"eval|metric|sample|generate|accuracy|loss|predict|train|step|forward|features|bpb")
# calls that keep a reference to their argument rather than reading it now
STORING = frozenset({"append", "insert", "add", "setdefault"})
INNER_SCOPES = (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)

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


# -- what a statement reads and writes

def _find(node, *types):
    """The node and its descendants of these types (a plain walk of the fields: libcst's matchers,
    and even its `children`, visit the whole subtree each time, which takes most of a file's time)."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, types):
            found.append(current)
        stack.extend(reversed(_children(current)))
    return found


_FIELDS = {}


def _children(node):
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    children = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            children.append(value)
        elif isinstance(value, (list, tuple)):
            children.extend(v for v in value if isinstance(v, cst.CSTNode))
    return children


def _mentions(node, name):
    return any(n.value == name for n in _find(node, cst.Name))


def _in_place(name):
    return name.endswith("_") and not name.startswith("_")


def _is_mutator(call):
    """A method call that changes its receiver: buf.add_(x), seen.append(x), optimizer.step()."""
    name = callee_name(call)
    return (isinstance(call.func, cst.Attribute) and dotted(call.func.value).split(".")[0] not in MODULES
            and (name in MUTATORS or _in_place(name)))


def changed_object(call):
    """The dotted path of what a call changes in place, or "": the receiver of a mutating method,
    the first argument of an in-place function (torch.nn.init.normal_(w), dist.all_reduce(t))."""
    if _is_mutator(call):
        return _object(call.func.value)
    name = callee_name(call)
    arguments = positional(call)
    if arguments and (name in IN_PLACE_FUNCTIONS or _in_place(name)):
        return _iterated(arguments[0].value)
    return ""


def _object(node):
    """The dotted path of what a target or receiver changes: self.k for self.k[i], x for x[0][1]."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return dotted(node)


def _target_writes(target):
    """[(path, kind)] an assignment target writes: "bind" for a name or attribute, "update" for the
    object a subscript writes into."""
    if isinstance(target, (cst.Tuple, cst.List)):
        return [w for element in target.elements for w in _target_writes(element.value)]
    if isinstance(target, cst.StarredElement):
        return _target_writes(target.value)
    if isinstance(target, cst.Subscript):
        return [(_object(target), "update")] if _object(target) else []
    return [(dotted(target), "bind")] if dotted(target) else []


class _Accesses:
    """What a statement reads and writes, as dotted paths: reads {path: "read" | "base" | "ref"}
    ("base": the object a subscript assignment writes into; "ref": a value only put in a container),
    writes {path: "bind" | "update" | "mode"}, and `runs`, the modules it calls. A read of a
    name the statement itself bound before is its own business, and so are loop variables and
    with-as names; a write through a loop variable over optimizer.param_groups writes those."""

    def __init__(self, source, statement):
        self.source = source
        self.reads, self.writes, self.runs = {}, {}, set()
        self._own, self._aliases = set(), {}
        self._statement(statement)

    def _statement(self, statement):
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                self._unit(small)
        elif isinstance(statement, cst.If):
            self._unit(statement.test)
            self._body(statement.body)
            self._orelse(statement.orelse)
        elif isinstance(statement, cst.While):
            self._unit(statement.test)
            self._body(statement.body)
            self._orelse(statement.orelse)
        elif isinstance(statement, cst.For):
            self._unit(statement.iter)
            targets = [n.value for n in _find(statement.target, cst.Name)]
            self._own.update(targets)
            iterated = _iterated(statement.iter)
            for name in targets if iterated else ():
                self._aliases[name] = iterated
            self._body(statement.body)
            self._orelse(statement.orelse)
        elif isinstance(statement, cst.With):
            for item in statement.items:
                self._unit(item.item)
                if item.asname is not None:
                    self._own.update(n.value for n in _find(item.asname.name, cst.Name))
            self._body(statement.body)

    def _body(self, body):
        for statement in body.body:
            self._statement(statement)

    def _orelse(self, orelse):
        if isinstance(orelse, cst.If):
            self._statement(orelse)
        elif orelse is not None:
            self._body(orelse.body)

    def _unit(self, node):
        """One small statement or header expression: its reads, then its writes."""
        source = self.source
        for name in _find(node, cst.Name):
            if not source.usable(name) or not source.is_load(name) or name.value in self._own:
                continue
            parent = source.parent(name)
            if isinstance(parent, cst.Attribute) and parent.attr is name:
                continue
            if _inner_bound_in(source, name, node):
                continue
            top = name
            while isinstance(source.parent(top), cst.Attribute) and source.parent(top).value is top:
                top = source.parent(top)
            if source.is_store(top):
                continue  # self.pos = ...: a write, whose object is only its base
            over = source.parent(top)
            kind = "base" if isinstance(over, cst.Subscript) and over.value is top and source.is_store(over) else "read"
            if kind == "read" and _referenced(source, top):
                kind = "ref"
            path = dotted(top)
            if self.reads.get(path, "base") != "read":
                self.reads[path] = kind
            if _runs(source, top):
                self.runs.add(path)
        writes = []
        if isinstance(node, cst.Assign):
            writes = [w for target in node.targets for w in _target_writes(target.target)]
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            writes = _target_writes(node.target)
        elif isinstance(node, cst.AugAssign):
            writes = [(path, "update") for path, _ in _target_writes(node.target)]
            for path, _ in writes:
                self.reads[path] = "read"
        for call in _find(node, cst.Call):
            changed = changed_object(call) if source.usable(call) else ""
            if changed and callee_name(call) in MODE_CALLS:
                writes.append((changed, "mode"))
            elif changed:
                # optimizer.step() reads all of the optimizer it changes: its param_groups' lr too
                writes.append((changed, "update"))
                if changed.split(".")[0] not in self._own:
                    self.reads[changed] = "read"
        for name in _find(node, cst.NamedExpr):
            writes += _target_writes(name.target)
        for path, kind in writes:
            self._write(path, kind)

    def _write(self, path, kind):
        root = path.split(".")[0]
        if root in self._aliases and (kind == "update" or "." in path):
            path, kind = self._aliases[root], "update"
        elif root in self._own:
            return
        if kind == "bind" and "." not in path:
            self._own.add(path)
        if self.writes.get(path) != "bind":
            self.writes[path] = kind


def _inner_bound_in(source, name, stop):
    """Whether `name` is a lambda parameter or comprehension variable of a scope inside `stop`."""
    for ancestor in source.ancestors(name):
        if isinstance(ancestor, cst.Lambda):
            if name.value in {p.name.value for p in ancestor.params.params}:
                return True
        elif isinstance(ancestor, INNER_SCOPES):
            if name.value in {n.value for f in _find(ancestor, cst.CompFor) for n in _find(f.target, cst.Name)}:
                return True
        if ancestor is stop:
            return False
    return False


def _runs(source, node):
    """Whether a module is run here, so its mode matters: called (model(x)), or handed to a
    function that evaluates, samples or trains with it."""
    parent = source.parent(node)
    if isinstance(parent, cst.Call) and parent.func is node:
        return True
    call = source.parent(parent) if isinstance(parent, cst.Arg) else None
    return isinstance(call, cst.Call) and RUNNING.search(callee_name(call).lower()) is not None


def _referenced(source, node):
    """Whether a value is only referred to, not read now: an element of a container literal, or
    what append/insert/add stores (groups = [{"params": decay}] sees decay filled later)."""
    parent = source.parent(node)
    if isinstance(parent, (cst.Element, cst.DictElement, cst.StarredElement)) and parent.value is node:
        return True
    if isinstance(parent, cst.Arg) and parent.value is node:
        call = source.parent(parent)
        return isinstance(call, cst.Call) and callee_name(call) in STORING and isinstance(call.func, cst.Attribute)
    return False


def _iterated(node):
    """What a loop's variable aliases pieces of: optimizer.param_groups, model for model.parameters()."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return _object(node.func.value)
    return _object(node)


def accesses(source, statement):
    return source.memo(("stale accesses", id(statement)), lambda s: _Accesses(s, statement))


def _related(written, write_kind, read, read_kind, runs):
    """Whether a read sees a write: the same path, an attribute of what was rebound, or an object
    one of whose attributes changed. Writing into x[i] is no read of x by another write into it, a
    reference to a list sees it filled later, and a module's mode matters only where it is run."""
    if read_kind in ("base", "ref"):
        return write_kind == "bind" and read == written
    if write_kind == "mode":
        return read == written and read in runs
    return read == written or read.startswith(written + ".") or written.startswith(read + ".")


def _conflicts(writer, reader):
    """[(path written, path read)] where `reader` reads what `writer` writes."""
    return [(w, r) for w, w_kind in writer.writes.items() for r, r_kind in reader.reads.items()
            if _related(w, w_kind, r, r_kind, reader.runs)]


# -- what is bound before a statement runs

def _bindings(statement):
    """Names and attribute paths a statement surely binds when it runs to its end."""
    if isinstance(statement, cst.SimpleStatementLine):
        return {path for small in statement.body for path in _small_bindings(small)}
    if isinstance(statement, cst.With):
        bound = {n.value for item in statement.items if item.asname is not None
                 for n in _find(item.asname.name, cst.Name)}
        return bound | _block_bindings(statement.body)
    if isinstance(statement, cst.If):
        if statement.orelse is None:
            return set()
        orelse = statement.orelse
        other = _bindings(orelse) if isinstance(orelse, cst.If) else _block_bindings(orelse.body)
        return _block_bindings(statement.body) & other
    if isinstance(statement, cst.Try):
        bound = _block_bindings(statement.body)
        for handler in statement.handlers:
            bound &= _block_bindings(handler.body)
        return bound | (_block_bindings(statement.finalbody.body) if statement.finalbody else set())
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return {statement.name.value}
    return set()


def _block_bindings(body):
    return {path for statement in body.body for path in _bindings(statement)}


def _small_bindings(small):
    if isinstance(small, cst.Assign):
        return {p for t in small.targets for p, kind in _target_writes(t.target) if kind == "bind"}
    if isinstance(small, (cst.AnnAssign, cst.AugAssign)):
        return {p for p, kind in _target_writes(small.target) if kind == "bind"}
    if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
        return {(a.asname.name.value if a.asname else dotted(a.name).split(".")[0]) for a in small.names}
    if isinstance(small, (cst.Global, cst.Nonlocal)):
        return {n.name.value for n in small.names}
    return set()


def _params(function):
    params = function.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    every += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return {p.name.value for p in every}


def bound_before(source, statement):
    """Names and attribute paths bound on every way to `statement`: parameters, and what the
    statements before it in its block and in the blocks around it bind (loop variables and with-as
    names of the statements it is in included)."""
    bound, child = set(), statement
    for ancestor in source.ancestors(statement):
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            for earlier in ancestor.body:
                if earlier is child:
                    break
                bound |= _bindings(earlier)
        elif isinstance(ancestor, cst.For) and child is ancestor.body:
            bound |= {n.value for n in _find(ancestor.target, cst.Name)}
        elif isinstance(ancestor, cst.With):
            bound |= {n.value for item in ancestor.items if item.asname is not None
                      for n in _find(item.asname.name, cst.Name)}
        elif isinstance(ancestor, cst.FunctionDef):
            return bound | _params(ancestor)
        child = ancestor
    return bound


# -- statement-swapped

def _span(source, statement):
    position = source.positions[statement]
    return position.end.line - position.start.line + 1


def _escapes(statement):
    """Whether running the statement may leave its block: a return, a raise, or a break or continue
    of a loop outside it."""
    if _find(statement, cst.Return, cst.Raise, cst.FunctionDef, cst.ClassDef):
        return True
    loops = _find(statement, cst.For, cst.While)
    inner = {id(n) for loop in loops for n in _find(loop.body, cst.Break, cst.Continue)}
    return any(id(n) not in inner for n in _find(statement, cst.Break, cst.Continue))


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
    inner = _find(statement, cst.SimpleStatementLine)
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
    if any(dotted(n) == path for n in _find(small.value, cst.Name, cst.Attribute)):
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
    if any(not _mentions(op, "SUM") for op in ops):
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


def _old_value_exists(source, first, conflicts, writes):
    """Whether each thing `first` binds that `second` reads was bound before `first` already: the
    swapped `second` then reads an older value instead of failing at once. An attribute set in
    __init__ exists only once __init__ has set it; elsewhere, as far as a statement can tell, it does."""
    bound = None
    function = source.enclosing_function(first)
    in_init = function is not None and function.name.value == "__init__"
    for written, _ in conflicts:
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
    stale = _conflicts(before, after)
    early = _conflicts(after, before)
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
    calls = [c for c in _find(statement, cst.Call) if changed_object(c) in paths]
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
            if not any(_touch(source, moved, s) for s in between):
                yield Reorder(tuple(span), order, moved, _cause(source, earlier, later, dependence, head, leads),
                              _terms(source, earlier, later, dependence))


def _passable(source, statement):
    """A statement a moved one may pass: it runs to its end (no return, break or raise)."""
    return (source.usable(statement) and isinstance(statement, (cst.SimpleStatementLine, *COMPOUND))
            and not _escapes(statement))


def _touch(source, a, b):
    """Whether one of two statements reads what the other writes."""
    first, second = accesses(source, a), accesses(source, b)
    return bool(_conflicts(first, second) or _conflicts(second, first))


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
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute) or not _object(call.func.value):
        return None
    if callee_name(call) == "zero_grad":
        return "grad", (_object(call.func.value),)
    return ("call", (_object(call.func.value),)) if callee_name(call) in RESET_METHODS else None


def _bound_in(loop):
    """The names a loop binds anywhere inside it (its variable included): what a statement hoisted
    above it must not read."""
    bound = set()
    for node in _find(loop, cst.For, cst.Assign, cst.AugAssign, cst.AnnAssign, cst.NamedExpr, cst.WithItem):
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, cst.WithItem):
            targets = [node.asname.name] if node.asname is not None else []
        else:
            targets = [node.target]
        for target in targets:
            root = target
            while isinstance(root, (cst.Attribute, cst.Subscript)):
                root = root.value
            bound |= {n.value for n in _find(root, cst.Name)}
    return bound


def _accumulated(loop, statement, path, in_place=True):
    """Whether the loop, beside `statement`, builds on what `path` holds: path += e,
    path = f(path), and (with `in_place`) path.append(e), path[i] = e, path.add_(e)."""
    skipped = {id(n) for n in _find(statement, cst.AugAssign, cst.Assign, cst.Call)}
    for node in _find(loop, cst.AugAssign, cst.Assign, cst.Call):
        if id(node) in skipped:
            continue
        if isinstance(node, cst.AugAssign) and _object(node.target) == path:
            return True
        if in_place and isinstance(node, cst.Call) and changed_object(node) == path:
            return True
        if isinstance(node, cst.Assign):
            for target in node.targets:
                written = _target_writes(target.target)
                if in_place and (path, "update") in written:
                    return True
                if (path, "bind") in written and any(dotted(n) == path for n in _find(node.value, cst.Name)):
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
                bound = _bound_in(loop) if bound is None else bound
                read = {n.value for n in _find(statement.body[0], cst.Name) if source.is_load(n)
                        and not (isinstance(source.parent(n), cst.Attribute) and source.parent(n).attr is n)}
                if read & bound:
                    continue
                site = self._site(source, loop, statement, *reset)
                if site is not None:
                    yield site

    @staticmethod
    def _site(source, loop, statement, kind, paths):
        if kind == "grad":
            if not any(isinstance(c.func, cst.Attribute) and callee_name(c) == "backward" for c in _find(loop, cst.Call)):
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
    for call in _find(loop, cst.Call):
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
    return {n.value for n in _find(header, cst.Name)}


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
            if any(_mentions(s, n) for s in between for n in names) or any(
                    _touch(source, statement, s) or not _passable(source, s) for s in between):
                continue
            bound = _bound_in(loop) if bound is None else bound
            value = statement.body[0].value
            if {n.value for n in _find(value, cst.Name) if source.is_load(n)} & bound or _draws(value):
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
    return any(STATEFUL_NAME.fullmatch(dotted(arg.value) or "") for call in _find(value, cst.Call)
               for arg in call.args)


def _reset_in(loop, name):
    """Whether the loop body sets `name` afresh itself (step_loss = torch.zeros(...)): the value
    before the loop is only a placeholder."""
    for statement in loop.body.body:
        small = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) else None
        if isinstance(small, cst.Assign) and name in _targets(statement) and not _mentions(small.value, name):
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
    for branch in _find(loop, cst.If):
        breaks = any(isinstance(s, cst.SimpleStatementLine) and any(isinstance(b, cst.Break) for b in s.body)
                     for s in branch.body.body) if isinstance(branch.body, cst.IndentedBlock) else False
        if breaks and _mentions(branch.test, name):
            return True
    return False


def _builds_state(value):
    """An object with state of its own: an optimizer, a generator, a scaler (a class is called)."""
    return any(callee_name(call)[:1].isupper() or callee_name(call) in BUILDERS for call in _find(value, cst.Call))


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
