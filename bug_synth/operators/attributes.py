"""The wrong member of an object or a sequence: an attribute read where a sibling of the same object
is meant (config.n_head -> config.n_kv_head, args.matrix_lr -> args.embedding_lr, self.c_q(x) ->
self.c_proj(x)), and a subscript by a loop counter or a position read or written one off
(layers[i] -> layers[i - 1], x[:, t] -> x[:, t + 1], cache[layer_idx] -> cache[layer_idx - 1]).

Siblings are the attributes a file reads or assigns on the same base (`config`, `args`,
`self.config`; `self` is each class's own), of the same kind as far as the file shows:

* a value: its scalar type, from the first of: a class field's annotation or an argparse
  `type=`/`store_true` of that name; what the file assigns to it (a literal, a declared field,
  a floor division); how it is used (a size, an index, a test); what its name says (n_*, *_len,
  *_steps are counts; *_lr, *_frac, dropout are fractions). An int that picks one of many (bos_id,
  layer_idx, rank) is a kind of its own, not a count. Only ints, floats and bools are swapped: a
  string swapped is a crash or a path, not a training bug; and not seeds, workers, sampling or
  logging options, nor tensor and module metadata (x.shape, module.weight);
* a layer called (self.c_q(x)): another the file builds with the very same call, so the swap
  runs and reads weights of its own.

Of a site's siblings, those that share a word of what its name is for are taken, at most two
(n_head: n_kv_head; matrix_lr: embedding_lr, scalar_lr; eval_every: save_every), the nearest
first; where none does, the single nearest in the order the file declares them (dataclass
fields, argparse arguments) or first mentions them. Pairs variable-swap makes (c_q/c_k,
train/val) and a sibling that is already the other operand (n_embd // n_head -> n_embd //
n_embd) are left out, as are a sibling a constructor has not set yet, the sizes a view or a
layer is built with (a shape error: nothing to learn) and the parts of a path (a missing file).

A position is an index that is a name bound by a loop over range/enumerate/arange/randperm (or a
split of those), or named as one (i, t, row, pos, index, *_idx); literal indices (tuple-index),
slices (slice-bound), i + 1 (arithmetic-off-by-one), dict keys, index tensors and argv are other
families' or no position."""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.indices import OFF_BY_ONE
from bug_synth.operators.reports import reports_only
from bug_synth.operators.roles import similar
from bug_synth.operators.shapes import callee_name, dotted, keyword, name_terms, names_in, plus, positional
from bug_synth.operators.source import Site

SCALARS = frozenset({"int", "index", "float", "bool"})
# what torch objects carry, not what the project chose: swapping them is a crash or nothing
FRAMEWORK = frozenset({
    "shape", "device", "dtype", "T", "mT", "H", "data", "grad", "ndim", "requires_grad", "is_leaf", "grad_fn",
    "training", "weight", "bias", "param_groups", "state", "defaults", "in_features", "out_features",
    "num_embeddings", "embedding_dim", "padding_idx", "sampler", "dataset", "real", "imag", "layout",
})
# options that only change randomness, speed or what is printed: a swap there shows nothing to learn
NOISE_WORDS = frozenset({"seed", "workers", "threads", "sample", "samples", "log", "print", "verbose", "tag", "run"})
COUNT_FIRST = frozenset({"n", "num"})
# last words of names of counts and sizes, and of ints that pick one of many (an id, a rank)
INT_LAST = frozenset({"size", "len", "length", "dim", "steps", "iters", "iterations", "every", "count", "layer",
                      "layers", "head", "heads", "depth", "patience", "batches", "embd"})
INDEX_LAST = frozenset({"id", "idx", "index", "rank"})
FRACTION_LAST = frozenset({"lr", "frac", "fraction", "ratio", "dropout", "decay", "eps", "beta", "beta1", "beta2",
                           "momentum", "temperature", "scale", "clip", "std"})
# calls whose arguments are sizes
SIZE_CALLS = frozenset({"range", "view", "reshape", "expand", "repeat", "zeros", "ones", "empty", "full", "arange",
                        "randn", "rand", "randint", "Linear", "Embedding", "new_zeros", "new_ones", "new_empty"})
# calls whose arguments are shapes: a size swapped there is a shape error (range(n) is a count)
SHAPE_CALLS = SIZE_CALLS - {"range"}
PATH_WORDS = frozenset({"path", "dir", "file", "filename"})
SIBLINGS = 2
# words every count or size has: sharing them makes no two names a pair
GENERIC_WORDS = frozenset({"n", "num", "size", "len", "length", "dim", "max", "min", "total", "count"})
SWAP_TERMS = ("swapped", "mixed up", "wrong attribute", "wrong field")

COUNTERS = frozenset({"range", "arange", "randperm", "enumerate"})
SPLITS = frozenset({"split", "chunk", "tolist"})
POSITION = re.compile(r"(?:i|j|t|pos|position|index|row|col|[a-z0-9_]*_(?:idx|index|pos|row))")
NOT_SEQUENCES = frozenset({"sys.argv", "os.environ", "environ", "argv"})
DICT_CALLS = frozenset({"dict", "Counter", "defaultdict", "OrderedDict"})
SHOWN_LIMIT = 50
COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
SHIFT_TERMS = OFF_BY_ONE + ("shift", "previous", "next", "wrong index", "wrong element", "misalign", "one before",
                            "one after")


# -- attribute-swapped

def _words(name):
    return {word for word in name.lower().split("_") if word}


def _role_words(name):
    """The words of a name that say what it is for (eval_every: eval), not that it is a count."""
    return _words(name) - GENERIC_WORDS


def _is_noise(name):
    return bool(_words(name) & NOISE_WORDS)


def _imported(source):
    """Names the file's imports bind: attributes of modules are the library's, not siblings."""
    names = set()
    for node in m.findall(source.module, m.Import() | m.ImportFrom()):
        if isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            if alias.asname is not None:
                names.add(dotted(alias.asname.name))
            elif isinstance(node, cst.Import):
                names.add(dotted(alias.name).split(".")[0])
            else:
                names.add(dotted(alias.name))
    return names


def _annotation_type(annotation):
    code = cst.Module([]).code_for_node(annotation.annotation).strip()
    return code if code in SCALARS or code == "str" else "other"


def _argparse_type(call):
    """The type an add_argument declares, and the attribute it fills (--max-seq-len: max_seq_len)."""
    dest = keyword(call, "dest")
    flags = [a.value.evaluated_value for a in positional(call) if isinstance(a.value, cst.SimpleString)]
    if dest is not None and isinstance(dest.value, cst.SimpleString):
        name = dest.value.evaluated_value
    else:
        long = [f for f in flags if isinstance(f, str) and f.startswith("--")]
        if not long:
            return None
        name = long[0][2:].replace("-", "_")
    kind, action = keyword(call, "type"), keyword(call, "action")
    if action is not None and isinstance(action.value, cst.SimpleString):
        return name, ("bool" if action.value.evaluated_value in ("store_true", "store_false") else "other")
    if kind is None:
        return name, "str"  # argparse's default type
    return name, dotted(kind.value) if dotted(kind.value) in SCALARS | {"str"} else "other"


def _declared(source):
    """{attribute name: type} from class fields (annotated) and argparse arguments, and the
    names in the order the file declares them; a name declared twice differently is dropped."""
    found, order = {}, []

    def add(name, kind):
        if name in found and found[name] != kind:
            found[name] = None
        else:
            found[name] = kind
        if name not in order:
            order.append(name)

    for node in m.findall(source.module, m.ClassDef() | m.Call()):
        if isinstance(node, cst.Call):
            declared = _argparse_type(node) if callee_name(node) == "add_argument" else None
            if declared is not None:
                add(*declared)
            continue
        for line in node.body.body:
            if isinstance(line, cst.SimpleStatementLine):
                for small in line.body:
                    if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                        add(small.target.value, _annotation_type(small.annotation))
    return {name: kind for name, kind in found.items() if kind is not None}, order


def _group_key(source, node):
    """Which object an attribute belongs to: (the class, "self...") for self, (None, base) else."""
    base = dotted(node.value)
    if not base:
        return None
    if base.split(".")[0] == "self":
        owner = next((a for a in source.ancestors(node) if isinstance(a, cst.ClassDef)), None)
        return owner, base
    return None, base


def _role(source, node):
    """What a read of base.attr is used as: "call", "object", "container", a scalar type it shows
    ("int", "bool", "str"), or None."""
    parent = source.parent(node)
    if isinstance(parent, cst.Call) and parent.func is node:
        return "call"
    if isinstance(parent, cst.Attribute) and parent.value is node:
        return "object"
    if isinstance(parent, cst.Subscript) and parent.value is node:
        return "container"
    if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is node:
        return "container"
    if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, (cst.FloorDivide, cst.Modulo)):
        return "int"
    if isinstance(parent, (cst.Index, cst.Slice)):
        return "int"
    if isinstance(parent, cst.Arg):
        call = source.parent(parent)
        if isinstance(call, cst.Call) and callee_name(call) in SIZE_CALLS:
            return "int"
        if isinstance(call, cst.Call) and callee_name(call) in ("len", "iter", "enumerate", "zip", "sorted"):
            return "container"
    tested = isinstance(parent, (cst.If, cst.While, cst.IfExp)) and parent.test is node
    if tested or isinstance(parent, cst.BooleanOperation) or (
            isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Not)):
        return "bool"
    if isinstance(parent, cst.Comparison):
        sides = [parent.left, *(c.comparator for c in parent.comparisons)]
        if any(isinstance(side, (cst.SimpleString, cst.FormattedString)) for side in sides):
            return "str"
    return None


def _stored_type(value, declared):
    """The type of what the file assigns to an attribute, where it shows."""
    if isinstance(value, cst.Integer):
        return "int"
    if isinstance(value, cst.Float):
        return "float"
    if isinstance(value, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        return "str"
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return "bool"
    if isinstance(value, cst.Attribute):
        return declared.get(value.attr.value)
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.FloorDivide):
        return "int"
    return None


def _name_type(name):
    words = name.lower().split("_")
    if words[0] in COUNT_FIRST and len(words) > 1 or words[-1] in INT_LAST | INDEX_LAST:
        return "int"
    if words[-1] in FRACTION_LAST:
        return "float"
    return None


class _Member:
    """One attribute of one base: where the file mentions it and what it is used as."""

    def __init__(self, name, first):
        self.name, self.first = name, first
        self.roles, self.stored, self.set_at = set(), [], []  # set_at: (function, line) of each store
        self.kind_, self.rank = None, 0  # filled in once the whole file is read

    def kind(self, declared):
        """"module:<constructor>", a scalar type ("index" for an int that picks one of many:
        bos_id, layer_idx, rank), or None (an object, a container, a method, or nothing the file
        shows)."""
        kind = self._kind(declared)
        if kind == "int" and self.name.lower().split("_")[-1] in INDEX_LAST:
            return "index"
        return kind

    def _kind(self, declared):
        if "call" in self.roles:
            calls = [v for v in self.stored if isinstance(v, cst.Call)]
            if len(self.stored) == 1 and calls:
                return "module:" + cst.Module([]).code_for_node(calls[0])
            return None
        if self.roles & {"object", "container"}:
            return None
        for kind in (declared.get(self.name), *(_stored_type(v, declared) for v in self.stored)):
            if kind is not None:
                return kind
        shown = self.roles & (SCALARS | {"str"})
        if len(shown) == 1:
            return next(iter(shown))
        return None if shown else _name_type(self.name)


def _groups(source):
    """{group key: {attribute name: _Member}}, each member with its kind and its rank in the order
    the file declares (or else first mentions) the names."""
    imported, (declared, order) = _imported(source), _declared(source)
    groups = {}
    for position, node in enumerate(m.findall(source.module, m.Attribute())):
        key = _group_key(source, node)
        if key is None or node.attr.value in FRAMEWORK:
            continue
        root = key[1].split(".")[0]
        if root in imported or root[:1].isupper():
            continue
        members = groups.setdefault(key, {})
        member = members.setdefault(node.attr.value, _Member(node.attr.value, position))
        if source.is_store(node):
            member.set_at.append((source.enclosing_function(node), source.line(node)))
            target = source.parent(node)
            assign = source.parent(target)
            if isinstance(target, cst.AssignTarget) and isinstance(assign, cst.Assign):
                member.stored.append(assign.value)
            elif isinstance(target, cst.AnnAssign) and target.value is not None:
                member.stored.append(target.value)
            else:
                member.stored.append(None)
        elif source.is_load(node):
            member.roles.add(_role(source, node))
    rank = {name: i for i, name in enumerate(order)}
    for members in groups.values():
        mentions = sorted(members.values(), key=lambda member: member.first)
        for index, member in enumerate(mentions):
            member.kind_, member.rank = member.kind(declared), rank.get(member.name, len(rank) + index)
    return groups


def _nearest(name, members):
    """The siblings of `name` of the same kind, nearest first: those that share a word of what
    the name is for (most shared first), then the nearest declaration or first mention (of two
    as near, the one that shares more words, n_layer: n_head, then the earlier)."""
    own = members[name]
    candidates = [other for other, member in members.items()
                  if other != name and member.kind_ == own.kind_ and not _is_noise(other) and not similar(name, other)]
    return sorted(candidates, key=lambda other: (-len(_role_words(name) & _role_words(other)),
                                                 abs(members[other].rank - own.rank),
                                                 -len(_words(name) & _words(other)), members[other].rank))


def _chosen(name, candidates):
    """Those that share a word of what the name is for, at most two; else the single nearest."""
    sharing = [other for other in candidates if _role_words(name) & _role_words(other)]
    return sharing[:SIBLINGS] or candidates[:1]


def _not_yet_set(source, node, member):
    """In a constructor, a sibling it sets only at or after the site does not exist yet there
    (self.num_windows = len(tokens) // self.window -> // self.num_windows is a crash)."""
    function, line = source.enclosing_function(node), source.line(node)
    here = [at for f, at in member.set_at if f is function]
    return function is not None and function.name.value == "__init__" and bool(here) and min(here) >= line


def _in_shape_or_path(source, node):
    """Inside the sizes of a view or a layer (a shape error, nothing to learn: the positional
    arguments of a class built, RMSNorm(n_embd), count as its sizes), or the parts of a path (a
    missing file)."""
    child = node
    for ancestor in source.ancestors(node):
        if isinstance(ancestor, cst.Call) and child is not ancestor.func:
            name = callee_name(ancestor)
            if name in SHAPE_CALLS or _words(name) & PATH_WORDS:
                return True
            if name[:1].isupper() and isinstance(child, cst.Arg) and child.keyword is None:
                return True
        if isinstance(ancestor, cst.BaseStatement):
            return False
        child = ancestor
    return False


def _operand_already(source, node, replacement):
    """The sibling is the other operand of the operation that reads the site (a // b -> a // a)."""
    parent = source.parent(node)
    if isinstance(parent, cst.BinaryOperation):
        sides = (parent.left, parent.right)
    elif isinstance(parent, cst.Comparison):
        sides = (parent.left, *(c.comparator for c in parent.comparisons))
    else:
        return False
    return any(dotted(side) == replacement for side in sides if side is not node)


@family
class AttributeSwapped(Family):
    name = "attribute-swapped"
    theme = "attributes"
    description = ("an attribute read where a sibling of the same object is meant: config.n_head -> config.n_kv_head, "
                   "self.c_q(x) -> self.c_proj(x)")

    def sites(self, source):
        groups = source.memo("attribute-groups", _groups)
        for node in source.nodes(cst.Attribute):
            key = _group_key(source, node)
            if key not in groups or node.attr.value not in groups[key] or not source.is_load(node):
                continue
            name, members = node.attr.value, groups[key]
            kind = members[name].kind_
            called = isinstance(source.parent(node), cst.Call) and source.parent(node).func is node
            if kind is None or (kind.startswith("module:") != called) or (kind not in SCALARS and not called):
                continue
            if _is_noise(name) or reports_only(source, node) or _in_shape_or_path(source, node):
                continue
            candidates = [other for other in _nearest(name, members)
                          if not _operand_already(source, node, f"{key[1]}.{other}")
                          and not _not_yet_set(source, node, members[other])]
            for other in _chosen(name, candidates):
                yield self._site(source, node, key[1], name, other, called)

    @staticmethod
    def _site(source, node, base, old, new, called):
        replacement = node.with_changes(attr=cst.Name(new))
        shown_old, shown_new = source.code(node), source.code(replacement)
        if called:
            cause = (f"{shown_new} is applied where {shown_old} is meant {source.where(node)}: a layer built the same "
                     f"way, with weights of its own")
        else:
            cause = f"{shown_new} is read where {shown_old} is meant {source.where(node)} (another attribute of {base})"
        return Site(node, replacement, cause, (name_terms(old), name_terms(new) + SWAP_TERMS))


# -- index-shifted

def _iterates_positions(iterable):
    """Whether a loop over `iterable` counts positions: range(n), torch.arange(n),
    torch.randperm(n).split(b); enumerate is handled by its caller."""
    while isinstance(iterable, cst.Call):
        name = callee_name(iterable)
        if name in COUNTERS - {"enumerate"}:
            return True
        if name in SPLITS and isinstance(iterable.func, cst.Attribute):
            iterable = iterable.func.value
        else:
            return False
    return False


def _counts_positions(loop):
    """The name a loop or comprehension binds to a position, or None: for i in range(n),
    for row, x in enumerate(xs), for batch in torch.randperm(n).split(b)."""
    target, iterable = loop.target, loop.iter
    if isinstance(iterable, cst.Call) and callee_name(iterable) == "enumerate":
        if not isinstance(target, (cst.Tuple, cst.List)) or not target.elements:
            return None
        target = target.elements[0].value
    elif not _iterates_positions(iterable):
        return None
    return target.value if isinstance(target, cst.Name) else None


def _loop_of(source, name):
    """The loop or comprehension clause that binds `name` where it is read, or None."""
    for ancestor in source.ancestors(name):
        if isinstance(ancestor, cst.For) and name.value in {n.value for n in m.findall(ancestor.target, m.Name())}:
            return ancestor
        if isinstance(ancestor, COMPREHENSIONS):
            clause = ancestor.for_in
            while clause is not None:
                if name.value in {n.value for n in m.findall(clause.target, m.Name())}:
                    return clause
                clause = clause.inner_for_in
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return None
    return None


def _dicts(source):
    """Dotted names the file assigns a dict to: their subscripts are keys, not positions."""
    found = set()
    for assign in m.findall(source.module, m.Assign()):
        value = assign.value
        if isinstance(value, (cst.Dict, cst.DictComp)) or (
                isinstance(value, cst.Call) and callee_name(value) in DICT_CALLS):
            found |= {dotted(t.target) for t in assign.targets if dotted(t.target)}
    return found


def _is_position(source, index):
    if isinstance(index, cst.Name):
        loop = _loop_of(source, index)
        if loop is not None and _counts_positions(loop) == index.value:
            return True
        return bool(POSITION.fullmatch(index.value))
    return isinstance(index, cst.Attribute) and bool(POSITION.fullmatch(index.attr.value))


def _changed_in_place(source, node):
    """x[i].zero_(), x[i].add_(...): the element read is written."""
    parent = source.parent(node)
    call = source.parent(parent)
    return (isinstance(parent, cst.Attribute) and isinstance(call, cst.Call) and call.func is parent
            and parent.attr.value.endswith("_") and not parent.attr.value.startswith("_"))


def _shown(source, node):
    code = source.code(node)
    if len(code) > SHOWN_LIMIT and isinstance(node, cst.Call):
        return f"{source.code(node.func)}(...)"
    return code


@family
class IndexShifted(Family):
    name = "index-shifted"
    theme = "attributes"
    description = "a subscript by a loop counter or a position one off: layers[i] -> layers[i - 1], x[:, t] -> x[:, t + 1]"

    def sites(self, source):
        dicts = source.memo("dict-names", _dicts)
        for subscript in source.nodes(cst.Subscript):
            value = dotted(subscript.value)
            if value in NOT_SEQUENCES or value in dicts or not (source.is_load(subscript) or source.is_store(subscript)):
                continue
            if reports_only(source, subscript):
                continue
            for axis, element in enumerate(subscript.slice):
                if isinstance(element.slice, cst.Index) and _is_position(source, element.slice.value):
                    for amount in (-1, 1):
                        yield self._site(source, subscript, axis, element.slice.value, amount)

    @staticmethod
    def _site(source, subscript, axis, index, amount):
        new = plus(index, amount)
        shifted = subscript.deep_replace(index, new)
        value, old = _shown(source, subscript.value), source.code(index)
        along = f" along axis {axis}" if len(subscript.slice) > 1 else ""
        verb = "written" if source.is_store(subscript) or _changed_in_place(source, subscript) else "read"
        side = "before" if amount < 0 else "after"
        names = names_in(subscript.value, limit=2)
        index_name = dotted(index).rsplit(".", 1)[-1]
        return Site(
            subscript, shifted,
            f"{value} is {verb} at {source.code(new)}{along} where {old} is meant {source.where(subscript)}: the "
            f"element one {side} the one meant",
            (names + name_terms(index_name), SHIFT_TERMS))
