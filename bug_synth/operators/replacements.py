"""Replacements: an arithmetic operator swapped for the one a tired hand writes (a ** 2 -> a * 2,
step % every <-> step // every, att @ v -> att * v, x * gate -> x + gate, x + f(x) -> x * f(x),
g.mul_(coef) -> g.div_(coef), p.add_(u) -> p.sub_(u)), and a hyperparameter left at its neutral
value (weight_decay=0.1 -> 0.0, betas=(0.9, 0.95) -> (0.0, 0.95), std=0.02 -> 0.0,
final_lr_frac=0.1 -> 1.0).

The swaps are the ones no other family makes: a - b -> a + b is sign-flipped's, a * b <-> a / b
scale-inverted's, a / b <-> a // b floor-division's, a * b -> a factor-dropped's (those edit
operators only, so their method forms, mul_ <-> div_ and add_ <-> sub_, are made here). They edit
arithmetic on values only: not string, path or list joins, not constants folded from literals, not
the sizes handed to a view or a constructor or a model dimension, not timing, not what only reports.

A hyperparameter is a number some name says sets the training: a keyword, a parameter default, an
assignment, a return of a schedule function (lr_multiplier), a config class's field (class bodies,
which the other families never edit, hold picochat's TrainConfig), a module-level constant, or a
literal factor of what such a name is set to (lr=scalar_lr * 0.01). Sizes, counts, indices, seeds,
epsilons and clamp bounds are none: their names are not on the list. Zero is the value a knob is
switched off with; one is the neutral value of a decay schedule's final fraction (the learning rate
never decays) and of a greedy sampling temperature."""

import re
from dataclasses import dataclass

import libcst as cst

from bug_synth.operators.arithmetic import is_path_join
from bug_synth.operators.constants import EPS_LIMIT, in_exponent, in_table
from bug_synth.operators.eps import is_eps
from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import reports_only
from bug_synth.operators.residual import residual_parts
from bug_synth.operators.shapes import (
    DULL_NAMES, MODULE_RECEIVERS, callee_name, dotted, float_value, is_method_call, name_terms, names_in, number,
    positional, receiver_name,
)
from bug_synth.operators.source import CONSTANT_NAME, Site, is_message_call
from bug_synth.operators.terms import (
    CONTAINERS, DIM_WORDS, MATH_CONSTANTS, SCALE_WORDS, TIMING, brief, in_size, operand_words,
)

REPLACED_TERMS = ("operator", "instead of", "wrong op", "typo")
POWER_TERMS = ("power", "**", "exponent", "pow", "squar", "multipl", "* instead")
MATMUL_TERMS = ("matmul", "matrix", "@", "elementwise", "element-wise", "dot product", "mm")
ADDED_TERMS = ("add", "+", "multipl", "scale", "gate", "instead of")
MULTIPLIED_TERMS = ("multipl", "*", "add", "+", "residual", "instead of")
ROUNDING_TERMS = ("%", "//", "modulo", "remainder", "mod ", "quotient", "floor div", "integer div")
INVERTED_TERMS = ("divid", "division", "multipl", "invert", "inverse", "reciprocal", "scal", "div_", "mul_")
SIGN_TERMS = ("sign", "negat", "subtract", "add", "opposite", "revers", "ascent", "sub_", "add_")
# what is added to a value, never multiplied into it: a bias, a shift, a positional embedding
ADDED_WORDS = frozenset({"bias", "biases", "shift", "offset", "positional", "emb", "embedding", "embeddings",
                         "wpe"})
# words of names for seeds, ids and positions: their sums are bookkeeping, not the maths trained
INDEX_WORDS = frozenset({"seed", "rank", "pos", "idx", "id", "ids", "index", "offset", "special", "step"})
# reads of a tensor's shape: a quotient of one is a size
SHAPE_READS = frozenset({"size", "shape", "numel", "dim", "ndim"})
# statements in a branch that only keeps the process tidy: gc.collect() every 5000 steps
QUIET_RECEIVERS = frozenset({"gc", "time", "torch.cuda"})
# tensor methods and torch functions of arithmetic: the method forms of the operators (set.add and
# re.sub are not among them: only in-place tensor methods, and torch.*)
METHODS = {"pow": "pow", "pow_": "pow", "matmul": "matmul", "mm": "matmul", "bmm": "matmul", "mul": "mul",
           "mul_": "mul", "div": "div", "div_": "div", "add_": "add", "sub_": "sub"}
TORCH_FUNCTIONS = frozenset({"pow", "matmul", "mm", "bmm", "mul", "div", "add", "sub"})


def _op(new_type, old):
    return new_type(whitespace_before=old.whitespace_before, whitespace_after=old.whitespace_after)


def _constant(node):
    """A number, math.pi, or an operation on those alone (3 ** 0.5, 2 ** 19)."""
    if float_value(node) is not None or dotted(node) in MATH_CONSTANTS:
        return True
    if isinstance(node, cst.BinaryOperation):
        return _constant(node.left) and _constant(node.right)
    if isinstance(node, cst.UnaryOperation):
        return _constant(node.expression)
    return False


def _container(node):
    """A string, list, tuple or path, or a join of them: % formats and * repeats these."""
    if isinstance(node, CONTAINERS + (cst.ConcatenatedString,)) or is_path_join(node):
        return True
    if isinstance(node, cst.BinaryOperation):
        return _container(node.left) or _container(node.right)
    return False


def _on_values(source, node):
    """Arithmetic on numbers or tensors that training depends on."""
    if _constant(node) or _container(node.left) or _container(node.right):
        return False
    if any(TIMING.fullmatch(name) for name in names_in(node, limit=99)):
        return False
    return not reports_only(source, node) and not _guards_report(source, node)


def _quiet(source, statement):
    """A statement that trains nothing: a report, a log call, gc.collect()."""
    if reports_only(source, statement):
        return True
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    calls = [s.value for s in statement.body if isinstance(s, cst.Expr) and isinstance(s.value, cst.Call)]
    return len(calls) == len(statement.body) and all(
        is_message_call(c) or receiver_name(c) in QUIET_RECEIVERS for c in calls)


def _guards_report(source, node):
    """In the test of an if whose body only reports (step % 100 == 0: log ...): a wrong cadence of
    a log line."""
    child = node
    for ancestor in source.ancestors(node):
        if isinstance(ancestor, cst.If) and child is ancestor.test:
            return all(_quiet(source, s) for s in ancestor.body.body)
        if isinstance(ancestor, cst.BaseStatement):
            return False
        child = ancestor
    return False


def _is_size(source, node):
    """A model dimension, a vocabulary size or a shape read: n_embd // n_head, x.size(-1) // 2,
    head_dim = ... // ... (the remainder there is a shape error at once, nothing to learn)."""
    statement = source.enclosing_statement(node)
    targets = []
    if isinstance(statement, cst.SimpleStatementLine):
        targets = [t.target for s in statement.body if isinstance(s, cst.Assign) for t in s.targets]
    names = [*names_in(node, limit=99), *(name for target in targets for name in names_in(target, limit=99))]
    words = {word for name in names for word in name.split("_")}
    reads = {callee_name(c) for c in _calls_and_attributes(node)}
    return bool(words & (DIM_WORDS | {"vocab"}) or reads & SHAPE_READS)


def _calls_and_attributes(node):
    """Every call under a node, and every attribute as a call of it (x.shape reads as shape)."""
    found = []

    def walk(n):
        if isinstance(n, cst.Call):
            found.append(n)
        elif isinstance(n, cst.Attribute):
            found.append(cst.Call(func=n))
        for child in n.children:
            walk(child)

    walk(node)
    return found


def _short(source, node, fallback):
    code = source.code(node)
    return code if len(code) <= 40 and "\n" not in code else fallback


def _operand_names(node, found):
    """The values an operand reads, as a diagnosis names them: x and weights in x * weights, attn in
    self.attn(norm(x)), not the functions and methods it calls (torch.arange, k.transpose) or
    their keywords (dtype=)."""
    if isinstance(node, cst.Name):
        found.append(node.value)
    elif isinstance(node, cst.Attribute):
        if dotted(node).split(".")[0] not in MODULE_RECEIVERS:
            _operand_names(node.value, found)
            found.append(node.attr.value)
    elif isinstance(node, cst.Call):
        if receiver_name(node).split(".")[0] == "self":
            found.append(callee_name(node))  # a layer of the model: self.attn(...)
        elif isinstance(node.func, cst.Attribute) and is_method_call(node):
            _operand_names(node.func.value, found)
        for arg in positional(node):
            _operand_names(arg.value, found)
    elif isinstance(node, cst.Subscript):
        _operand_names(node.value, found)
    elif not isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        for child in node.children:
            _operand_names(child, found)
    return found


def _operand_terms(source, *nodes):
    """How a diagnosis names the operands (x as " x ", "`x`"...): their first three values."""
    names = [name for node in nodes for name in _operand_names(node, []) if name not in DULL_NAMES]
    terms = tuple(term for name in list(dict.fromkeys(name.lower() for name in names))[:3]
                  for term in name_terms(name))
    return terms or tuple(source.code(node).lower() for node in nodes)


@family
class OperatorReplaced(Family):
    name = "operator-replaced"
    theme = "replacements"
    description = ("an arithmetic operator a tired hand swaps: a ** b -> a * b, a % b <-> a // b, a @ b -> a * b, "
                   "x * gate -> x + gate, x + f(x) -> x * f(x), mul_ <-> div_, add_ <-> sub_")

    def sites(self, source):
        for node in source.nodes(cst.BinaryOperation, cst.Call):
            if isinstance(node, cst.Call):
                yield from self._method_sites(source, node)
            elif _on_values(source, node):
                yield from self._operator_sites(source, node)

    def _operator_sites(self, source, node):
        operator = node.operator
        if isinstance(operator, (cst.Modulo, cst.FloorDivide)):
            # i % n in an index is a real wrong element; a size is a shape error at once
            in_a_size = in_size(source, node, indices=False, roundings=False)
            if not in_a_size and not (isinstance(operator, cst.FloorDivide) and _is_size(source, node)):
                yield self._rounding(source, node)
            return
        if in_size(source, node, roundings=False):
            return
        left, right = brief(source, node.left, "the value"), brief(source, node.right, "the second term")
        if isinstance(operator, cst.Power):
            right = brief(source, node.right, "the exponent")
            yield self._replaced(source, node, cst.Multiply, f"{left} is multiplied by {right} where it should be "
                                 f"raised to that power", POWER_TERMS)
        elif isinstance(operator, cst.MatrixMultiply):
            yield self._replaced(source, node, cst.Multiply, f"{left} is multiplied elementwise (*) by {right} where "
                                 f"a matrix product ({left} @ {right}) is meant", MATMUL_TERMS)
        elif isinstance(operator, cst.Multiply) and self._scaled(node):
            yield self._replaced(source, node, cst.Add, f"{left} and {right} are added where they should be "
                                 f"multiplied", ADDED_TERMS)
        elif isinstance(operator, cst.Add):
            if self._added(source, node):
                yield self._replaced(source, node, cst.Multiply, f"{left} is multiplied by {right} where {right} "
                                     f"should be added to it", MULTIPLIED_TERMS)
            if self._subtractable(node):
                yield self._replaced(source, node, cst.Subtract, f"{right} is subtracted from {left} where it should "
                                     f"be added", SIGN_TERMS)

    @staticmethod
    def _subtractable(node):
        """A sum of weighted terms (x1 * cos + x2 * sin, floor + (1 - floor) * c): sign-flipped makes
        a - b -> a + b, never this. Not a literal offset or an epsilon (other families'), not the
        arithmetic of seeds, ids and positions, and not x + f(x): a branch that ends in a layer
        learns its sign back (x - f(x) trains as x + f(x) does)."""
        sides = (node.left, node.right)
        if any(_constant(side) or is_eps(side) for side in sides):
            return False
        if {word for name in names_in(node, limit=99) for word in name.split("_")} & INDEX_WORDS:
            return False
        return any(isinstance(side, cst.BinaryOperation) and isinstance(side.operator, cst.Multiply) for side in sides)

    @staticmethod
    def _scaled(node):
        """x * gate, lr * g: a named scale multiplies a value (not a literal coefficient, not a
        product of two model dimensions)."""
        if float_value(node.left) is not None or float_value(node.right) is not None:
            return False
        left, right = operand_words(node.left), operand_words(node.right)
        return bool((left | right) & SCALE_WORDS) and not (left & DIM_WORDS and right & DIM_WORDS)

    @staticmethod
    def _added(source, node):
        """x + f(x) as a residual update, or a bias, shift or positional embedding added."""
        if float_value(node.left) is not None or float_value(node.right) is not None:
            return False
        parent = source.parent(node)
        if isinstance(parent, cst.Assign) and parent.value is node and residual_parts(source, parent):
            return True
        return bool((operand_words(node.left) | operand_words(node.right)) & ADDED_WORDS)

    @staticmethod
    def _replaced(source, node, new_type, sentence, kind_terms):
        return Site(node, node.with_changes(operator=_op(new_type, node.operator)),
                    f"{sentence} {source.where(node)}",
                    (_operand_terms(source, node.left, node.right), kind_terms + REPLACED_TERMS))

    @staticmethod
    def _rounding(source, node):
        left, right = brief(source, node.left, "the value"), brief(source, node.right, "its divisor")
        new = node.with_changes(operator=_op(cst.FloorDivide if isinstance(node.operator, cst.Modulo)
                                             else cst.Modulo, node.operator))
        took, meant = ("quotient", "remainder") if isinstance(node.operator, cst.Modulo) else ("remainder", "quotient")
        shown = f" ({source.code(new)} instead of {source.code(node)})" if len(source.code(node)) <= 40 else ""
        return Site(
            node, new, f"the {took} of {left} by {right} is taken where the {meant} is meant {source.where(node)}{shown}",
            (_operand_terms(source, node.left, node.right), ROUNDING_TERMS + REPLACED_TERMS))

    # -- the method forms: g.mul_(coef), p.add_(u, alpha=-lr), torch.matmul(a, b), x.pow(2)

    def _method_sites(self, source, call):
        name = callee_name(call)
        if is_method_call(call):
            kind = METHODS.get(name)
            value, other = call.func.value, positional(call)[0].value if positional(call) else None
        elif receiver_name(call) == "torch" and name in TORCH_FUNCTIONS and len(positional(call)) >= 2:
            kind = METHODS.get(name)
            value, other = positional(call)[0].value, positional(call)[1].value
        else:
            return
        if kind is None or other is None or in_size(source, call, roundings=False) or reports_only(source, call):
            return
        inplace = "_" if name.endswith("_") else ""
        left, right = brief(source, value, "the tensor"), brief(source, other, "its operand")
        if kind == "pow" and float_value(other) is not None:
            yield self._renamed(source, call, f"mul{inplace}", f"{left} is multiplied by {right} where it should be "
                                f"raised to that power", POWER_TERMS)
        elif kind == "matmul":
            yield self._renamed(source, call, "mul", f"{left} is multiplied elementwise by {right} where a matrix "
                                f"product is meant", MATMUL_TERMS)
        elif kind in ("mul", "div"):
            swapped, done, meant = ("div", "divided", "multiplied") if kind == "mul" else ("mul", "multiplied", "divided")
            yield self._renamed(source, call, swapped + inplace, f"{left} is {done} by {right} where it should be "
                                f"{meant} by it", INVERTED_TERMS)
            if kind == "mul" and (operand_words(value) | operand_words(other)) & SCALE_WORDS and float_value(other) is None:
                yield self._renamed(source, call, "add" + inplace, f"{left} and {right} are added where they should "
                                    f"be multiplied", ADDED_TERMS)
        elif kind in ("add", "sub"):
            swapped, done, meant = ("sub", "subtracted from", "added to") if kind == "add" else (
                "add", "added to", "subtracted from")
            yield self._renamed(source, call, swapped + inplace, f"{right} is {done} {left} where it should be "
                                f"{meant} it", SIGN_TERMS)

    @staticmethod
    def _renamed(source, call, new_name, sentence, kind_terms):
        new = call.with_changes(func=call.func.with_changes(attr=cst.Name(new_name)))
        return Site(call, new, f"{sentence} ({callee_name(new)} in place of {callee_name(call)}) {source.where(call)}",
                    (_operand_terms(source, *((call.func.value,) if is_method_call(call) else ()),
                                    *(arg.value for arg in positional(call))),
                     kind_terms + REPLACED_TERMS))


# -- constant-zeroed

# words of the names of knobs a number sets
LR = frozenset({"lr", "lrs", "learning", "lrm"})
DROPOUT = frozenset({"dropout", "drop"})
INIT = frozenset({"std", "init", "initializer", "gain"})
MOMENTUM = frozenset({"momentum", "beta1", "betas"})
WARMUP = frozenset({"warmup", "warmdown", "cooldown"})
AUGMENT = frozenset({"margin", "jitter"})
SCALES = frozenset({"scale", "lambda", "lambdas", "coef", "coeff", "mult", "multiplier", "alpha"})
# a schedule's fraction: final_lr_frac, min_lr_ratio, warmdown_ratio
FRACTIONS = frozenset({"frac", "fraction", "ratio"})
SCHEDULE = LR | WARMUP | frozenset({"final", "min", "decay"})
# torch.nn.init functions: the positional argument after the tensor that sets the scale, and its name
INIT_POSITIONS = {"normal_": (2, "std"), "trunc_normal_": (2, "std"), "constant_": (1, "value"),
                  "xavier_uniform_": (1, "gain"), "xavier_normal_": (1, "gain"), "orthogonal_": (1, "gain"),
                  "uniform_": (2, "upper bound")}
CONFIG_CLASS = re.compile(r"\w*(?:Config|Args|Arguments|Hyperparameters|Hparams|Params)")
FIELD_CALLS = frozenset({"field", "arg", "Field"})
ZEROED_TERMS = ("zero", "0.0", "=0", "= 0", "set to 0", "disabled", "turned off", "switched off", "neutral")
ONE_TERMS = ("1.0", "=1", "= 1", "to one", "to 1", "never decay", "no decay", "not decay", "doesn't decay",
             "does not decay", "sampl", "not greedy", "stochastic")
# what a diagnosis calls the knob besides its name
KNOB_TERMS = {"lr": ("learning rate", "lr"), "wd": ("weight decay", "decay"), "dropout": ("dropout",),
              "smoothing": ("smoothing",), "init": ("init", "std", "zero init"),
              "momentum": ("momentum", "beta1", "beta"), "warmup": ("warmup", "warmdown"),
              "temperature": ("temperature", "greedy"), "schedule": ("decay", "final", "schedule"),
              "clip": ("clip", "max norm", "max_norm")}


@dataclass(frozen=True)
class Slot:
    """A place a name is given a number: the name's words say whether it is a knob."""
    name: str
    value: cst.BaseExpression | None
    where: str
    call: cst.Call | None = None
    label: str = ""  # the cause's name for a number that has no name= (an init function's std)
    terms: tuple = ()  # names a diagnosis would use for it, where the name is not one


def _name_words(name):
    return {word for word in name.lower().split("_") if word}


def _knob(name, call=None):
    """(kind, what switching it off does) for a name that sets a knob, or None for a size, a
    count, a seed, an epsilon or a clamp bound."""
    words = _name_words(name)
    if words & {"eps", "epsilon"}:
        return None
    if words & FRACTIONS and words & SCHEDULE:
        if words & WARMUP:
            return "warmup", f"no {sorted(words & WARMUP)[0]}"
        return "schedule", "the learning rate decays to zero"
    if words & LR:
        return "lr", "the parameters it drives never move"
    if ("decay" in words and "weight" in words) or "wd" in words:
        return "wd", "no weight decay"
    if words & DROPOUT or (name == "p" and call is not None and "dropout" in callee_name(call).lower()):
        return "dropout", "no dropout"
    if "smoothing" in words:
        return "smoothing", "no label smoothing"
    if words & INIT:
        args = positional(call) if call is not None and callee_name(call) in INIT_POSITIONS else []
        return "init", f"{(dotted(args[0].value) if args else '') or 'what it initialises'} starts at zero"
    if words & MOMENTUM:
        return "momentum", "no momentum"
    if words & WARMUP:
        return "warmup", f"no {sorted(words & WARMUP)[0]}"
    if "temperature" in words:
        return "temperature", "sampling is greedy"
    if words & AUGMENT:
        return "augment", f"no {name.lower().replace('_', ' ')}: the augmentation is off"
    if "clip" in words or name == "max_norm":
        return "clip", ""  # 0 turns clipping off in one codebase and zeroes every gradient in another
    if words & SCALES or words & FRACTIONS:
        return "scale", ""
    return None


def _neutral_values(kind, value, effect):
    """(new value, effect): zero for a knob that is on; one for a decay schedule's fraction (never
    decays), and for a greedy temperature."""
    new = [(0, effect)] if value != 0 else []
    if kind == "schedule" and value != 1:
        new.append((1, "the learning rate never decays"))
    if kind == "temperature" and value == 0:
        new.append((1, "sampling is no longer greedy"))
    return new


def _literal_of(node):
    """The Float or Integer of a literal (through a unary minus), or None."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        node = node.expression
    return node if isinstance(node, (cst.Float, cst.Integer)) else None


def _factors(node):
    """Literal factors of the products of an expression: 0.5 in a * b * 0.5, 0.85 and 0.97 in
    (1 - frac) * 0.85 + frac * 0.97, 0.10 in 0.10 * i / n; not the terms of a sum, a divisor, or
    what a call or an exponent holds."""
    if not isinstance(node, cst.BinaryOperation):
        return
    if isinstance(node.operator, (cst.Add, cst.Subtract)):
        sides = (node.left, node.right)
    elif isinstance(node.operator, cst.Divide):
        sides = (node.left,)
    elif isinstance(node.operator, cst.Multiply):
        sides = (node.left, node.right)
        for side in sides:
            if _literal_of(side) is not None and float_value(side) not in (1, -1):
                yield side
    else:
        return
    for side in sides:
        yield from _factors(side)


def _whole_product(value, factor):
    """Whether the factor scales the whole value (a * b * 0.5), so zeroing it zeroes the value."""
    if value is factor:
        return True
    return (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply)
            and (_whole_product(value.left, factor) or _whole_product(value.right, factor)))


def _field_default(value):
    """The default of a config field: `0.1`, `arg(0.1, "help")`, `field(default=0.1)`."""
    if isinstance(value, cst.Call) and callee_name(value) in FIELD_CALLS:
        given = [arg.value for arg in value.args if arg.keyword is not None and arg.keyword.value == "default"]
        args = positional(value)
        if given:
            return given[0]
        return args[0].value if args and callee_name(value) == "arg" else None
    return value


def _is_dataclass(decorator):
    node = decorator.decorator
    return "dataclass" in dotted(node.func if isinstance(node, cst.Call) else node)


def _config_classes(source):
    """Module-level classes that hold a run's settings: dataclasses, and classes named TrainConfig,
    Hyperparameters..."""
    return [statement for statement in source.module.body
            if isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock)
            and (any(map(_is_dataclass, statement.decorators)) or CONFIG_CLASS.fullmatch(statement.name.value))]


def _assigned_name(statement):
    """The last name of the single target of an assignment (lr for self.lr = ...), or ""."""
    if isinstance(statement, cst.Assign):
        targets = [t.target for t in statement.targets]
    else:
        targets = [statement.target]
    if len(targets) != 1 or statement.value is None:
        return ""
    return dotted(targets[0]).rsplit(".", 1)[-1]


@family
class ConstantZeroed(Family):
    name = "constant-zeroed"
    theme = "replacements"
    description = ("a hyperparameter left at its neutral value: weight_decay=0.1 -> 0.0, betas=(0.9, 0.95) -> "
                   "(0.0, 0.95), std=0.02 -> 0.0, final_lr_frac=0.1 -> 1.0")

    def sites(self, source):
        taken = set()
        for slot in self._slots(source):
            knob = _knob(slot.name, slot.call)
            if knob is None:
                continue
            for node, role in self._literals(slot):
                literal = _literal_of(node)
                if literal in taken or in_exponent(source, literal) or not self._reachable(source, literal):
                    continue
                taken.add(literal)
                yield from self._zeroed(source, slot, knob, node, role)

    # -- where a name is given a number

    def _slots(self, source):
        yield from self._call_slots(source)
        yield from self._assignment_slots(source)
        yield from self._function_slots(source)
        yield from self._config_slots(source)

    def _call_slots(self, source):
        """f(lr=0.1), and the scale an init function takes by position (normal_(w, 0.0, 0.02))."""
        for call in source.nodes(cst.Call):
            if callee_name(call) in FIELD_CALLS or reports_only(source, call):
                continue
            for arg in call.args:
                if arg.keyword is not None:
                    yield Slot(arg.keyword.value, arg.value, source.where(call), call)
            slot = self._init_position(source, call)
            if slot is not None:
                yield slot

    @staticmethod
    def _init_position(source, call):
        """normal_(w, 0.0, 0.02): the std; uniform_(w, 0.0, b): the upper bound (in uniform_(w, -s, s)
        zeroing one bound makes the init lopsided, not off)."""
        position = INIT_POSITIONS.get(callee_name(call))
        args = positional(call)
        if position is None or len(args) <= position[0]:
            return None
        index, what = position
        if callee_name(call) == "uniform_" and float_value(args[1].value) != 0:
            return None
        return Slot("init", args[index].value, source.where(call), call,
                    label=f"the {what} passed to {callee_name(call)} for {_short(source, args[0].value, 'the tensor')}",
                    terms=names_in(args[0].value, limit=3))

    @staticmethod
    def _assignment_slots(source):
        """lr = 0.1, self.lr = 0.1, {"weight_decay": 0.1}."""
        for element in source.nodes(cst.DictElement):
            if isinstance(element.key, cst.SimpleString) and not reports_only(source, element):
                yield Slot(element.key.evaluated_value, element.value, source.where(element))
        for statement in source.nodes(cst.Assign, cst.AnnAssign):
            if _assigned_name(statement) and not reports_only(source, statement):
                yield Slot(_assigned_name(statement), statement.value, source.where(statement))

    @staticmethod
    def _function_slots(source):
        """def f(warmup_steps=10), and what a schedule function returns (lr_multiplier)."""
        for param in source.nodes(cst.Param):
            if param.default is not None:
                yield Slot(param.name.value, param.default, source.where(param))
        for statement in source.nodes(cst.Return):
            function = source.enclosing_function(statement)
            if function is not None and statement.value is not None:
                name = function.name.value
                yield Slot(name, statement.value, source.where(statement), label=f"what {name} returns",
                           terms=name_terms(name))

    @staticmethod
    def _config_slots(source):
        """The fields of a config class and the module's CONSTANTS, where the other families never
        look: the defaults a run trains with."""
        for cls in source.memo("replacements-config-classes", _config_classes):
            for line in cls.body.body:
                for statement in line.body if isinstance(line, cst.SimpleStatementLine) else ():
                    if isinstance(statement, (cst.Assign, cst.AnnAssign)) and _assigned_name(statement):
                        yield Slot(_assigned_name(statement), _field_default(statement.value),
                                   f"in the {cls.name.value} defaults")
        for line in source.module.body:
            if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
                statement = line.body[0]
                if (isinstance(statement, (cst.Assign, cst.AnnAssign))
                        and CONSTANT_NAME.fullmatch(_assigned_name(statement))):
                    yield Slot(_assigned_name(statement), statement.value, "at module level")

    @staticmethod
    def _literals(slot):
        """(literal node, role): the value itself, the first of a betas pair, or a literal factor of
        a product (lr=scalar_lr * 0.01)."""
        value = slot.value
        if value is None:
            return
        if _literal_of(value) is not None:
            yield value, "value"
        elif isinstance(value, (cst.Tuple, cst.List)) and "betas" in _name_words(slot.name) and value.elements:
            if _literal_of(value.elements[0].value) is not None:
                yield value.elements[0].value, "beta1"
        elif not _constant(value):  # SCALE = 0.5 * 2.0 is one number written as two: not a factor of anything
            for factor in _factors(value):
                yield factor, "factor"

    @staticmethod
    def _reachable(source, literal):
        if source.usable(literal):
            return True
        # config fields and module constants, which the other families' rules keep out of
        return not any(is_message_call(a) or isinstance(a, cst.FormattedString) for a in source.ancestors(literal))

    def _zeroed(self, source, slot, knob, node, role):
        kind, effect = knob
        value = float_value(node)
        if role == "beta1":
            kind, effect = "momentum", "no momentum"
        elif role == "factor" and not _whole_product(slot.value, node):
            effect = "the term it scales vanishes"
        elif slot.label.startswith("what"):
            effect = ""  # a schedule's return is one phase of it: the knob is off there only
        choices = [(0, effect)] if role != "value" else _neutral_values(kind, value, effect)
        for new_value, why in choices:
            literal = _literal_of(node)
            if self._magnitude_covers(source, literal, value, new_value):
                continue
            new = number(float(new_value)) if isinstance(literal, cst.Float) else cst.Integer(str(new_value))
            before, after = source.code(node), source.code(new)
            if role == "beta1":
                change = f"beta1 (the first of {slot.name}) is {after} instead of {before}"
            elif role == "factor":
                shown = _short(source, slot.value, "")
                owner = (f"{slot.label} ({shown})" if shown else slot.label) if slot.label else f"{slot.name}={shown}"
                change = f"the factor {before} in {owner} is {after}"
            elif slot.label:
                change = f"{slot.label} is {after} instead of {before}"
            else:
                change = f"{slot.name}={after} instead of {slot.name}={before}"
            yield Site(node, new, f"{change} {slot.where}" + (f": {why}" if why else ""),
                       (self._thing_terms(slot, kind),
                        tuple(dict.fromkeys((ZEROED_TERMS if new_value == 0 else ONE_TERMS) + (after,) * (len(after) > 1)))))

    @staticmethod
    def _thing_terms(slot, kind):
        names = () if slot.label else name_terms(slot.name) + (slot.name.lower().replace("_", " "),)
        return tuple(dict.fromkeys(names + tuple(slot.terms) + KNOB_TERMS.get(kind, ())))

    @staticmethod
    def _magnitude_covers(source, literal, value, new_value):
        """constant-magnitude already makes 0.1 -> 1.0 where it looks (a float it may reach)."""
        if not isinstance(literal, cst.Float) or not source.usable(literal) or in_table(source, literal):
            return False
        return value >= EPS_LIMIT and any(abs(new_value - value * factor) < 1e-12 for factor in (10, 0.1))
