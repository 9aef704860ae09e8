"""What a statement reads, writes and binds, for the families that reorder statements (stale.py):
the dotted paths a statement reads and the ones it binds or changes in place (accesses), what a call
changes (changed_object), what is surely bound before a statement runs (bound_before) and what a
loop binds (bound_in), and whether one statement reads what another writes (conflicts, touch)."""

import dataclasses
import re

import libcst as cst

from bug_synth.operators.shapes import callee_name, dotted, positional

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


# -- what a statement reads and writes

def find(node, *types):
    """The node and its descendants of these types (a plain walk of the fields: libcst's matchers,
    and even its `children`, visit the whole subtree each time, which takes most of a file's time)."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, types):
            found.append(current)
        stack.extend(reversed(_children(current)))
    return found


# each node type's field names, looked up once: dataclasses.fields() on every node of a walk is slow
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


def mentions(node, name):
    """Whether the name occurs anywhere in the node, read, bound or as an attribute."""
    return any(n.value == name for n in find(node, cst.Name))


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
        return written_object(call.func.value)
    name = callee_name(call)
    arguments = positional(call)
    if arguments and (name in IN_PLACE_FUNCTIONS or _in_place(name)):
        return _iterated(arguments[0].value)
    return ""


def written_object(node):
    """The dotted path of what a target or receiver changes: self.k for self.k[i], x for x[0][1]."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return dotted(node)


def target_writes(target):
    """[(path, kind)] an assignment target writes: "bind" for a name or attribute, "update" for the
    object a subscript writes into."""
    if isinstance(target, (cst.Tuple, cst.List)):
        return [w for element in target.elements for w in target_writes(element.value)]
    if isinstance(target, cst.StarredElement):
        return target_writes(target.value)
    if isinstance(target, cst.Subscript):
        return [(written_object(target), "update")] if written_object(target) else []
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
            targets = [n.value for n in find(statement.target, cst.Name)]
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
                    self._own.update(n.value for n in find(item.asname.name, cst.Name))
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
        for name in find(node, cst.Name):
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
            writes = [w for target in node.targets for w in target_writes(target.target)]
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            writes = target_writes(node.target)
        elif isinstance(node, cst.AugAssign):
            writes = [(path, "update") for path, _ in target_writes(node.target)]
            for path, _ in writes:
                self.reads[path] = "read"
        for call in find(node, cst.Call):
            changed = changed_object(call) if source.usable(call) else ""
            if changed and callee_name(call) in MODE_CALLS:
                writes.append((changed, "mode"))
            elif changed:
                # optimizer.step() reads all of the optimizer it changes: its param_groups' lr too
                writes.append((changed, "update"))
                if changed.split(".")[0] not in self._own:
                    self.reads[changed] = "read"
        for name in find(node, cst.NamedExpr):
            writes += target_writes(name.target)
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
            if name.value in {n.value for f in find(ancestor, cst.CompFor) for n in find(f.target, cst.Name)}:
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
        return written_object(node.func.value)
    return written_object(node)


def accesses(source, statement):
    """The statement's _Accesses, computed once per file: each statement is compared with several
    neighbours, by both swap families."""
    return source.memo(("statement accesses", id(statement)), lambda s: _Accesses(s, statement))


def _related(written, write_kind, read, read_kind, runs):
    """Whether a read sees a write: the same path, an attribute of what was rebound, or an object
    one of whose attributes changed. Writing into x[i] is no read of x by another write into it, a
    reference to a list sees it filled later, and a module's mode matters only where it is run."""
    if read_kind in ("base", "ref"):
        return write_kind == "bind" and read == written
    if write_kind == "mode":
        return read == written and read in runs
    return read == written or read.startswith(written + ".") or written.startswith(read + ".")


def conflicts(writer, reader):
    """[(path written, path read)] where `reader` reads what `writer` writes."""
    return [(w, r) for w, w_kind in writer.writes.items() for r, r_kind in reader.reads.items()
            if _related(w, w_kind, r, r_kind, reader.runs)]


def touch(source, a, b):
    """Whether one of two statements reads what the other writes."""
    first, second = accesses(source, a), accesses(source, b)
    return bool(conflicts(first, second) or conflicts(second, first))


# -- what is bound before a statement runs

def _bindings(statement):
    """Names and attribute paths a statement surely binds when it runs to its end."""
    if isinstance(statement, cst.SimpleStatementLine):
        return {path for small in statement.body for path in _small_bindings(small)}
    if isinstance(statement, cst.With):
        bound = {n.value for item in statement.items if item.asname is not None
                 for n in find(item.asname.name, cst.Name)}
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
        return {p for t in small.targets for p, kind in target_writes(t.target) if kind == "bind"}
    if isinstance(small, (cst.AnnAssign, cst.AugAssign)):
        return {p for p, kind in target_writes(small.target) if kind == "bind"}
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
            bound |= {n.value for n in find(ancestor.target, cst.Name)}
        elif isinstance(ancestor, cst.With):
            bound |= {n.value for item in ancestor.items if item.asname is not None
                      for n in find(item.asname.name, cst.Name)}
        elif isinstance(ancestor, cst.FunctionDef):
            return bound | _params(ancestor)
        child = ancestor
    return bound


def bound_in(loop):
    """The names a loop binds anywhere inside it (its variable included): what a statement hoisted
    above it must not read."""
    bound = set()
    for node in find(loop, cst.For, cst.Assign, cst.AugAssign, cst.AnnAssign, cst.NamedExpr, cst.WithItem):
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
            bound |= {n.value for n in find(root, cst.Name)}
    return bound
