"""Terms and factors left out: one operand of a sum or difference dropped (tok_emb + pos_emb ->
tok_emb, x - x.mean() -> x, seed + 1000 * rank -> seed), or one factor of a product or the divisor
of a quotient (logits * scale -> logits, 0.5 * x -> x, loss / grad_accum_steps -> loss): a bias,
an offset, a centring or a scale computed and never applied.

Only arithmetic on values: not string, list or path joins, not literal offsets or epsilons (the
off-by-one and eps families change those), not sizes handed to a view or a constructor (a shape
error, nothing to learn), not timing, and not statements that only report or check. x += e and
x /= d stay whole: without its operand the statement goes, which accumulate-assign and
accumulation-unscaled already do."""

import re

import libcst as cst

from bug_synth.operators.arithmetic import SEQUENCES, is_path_join
from bug_synth.operators.eps import is_eps
from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import reports_only
from bug_synth.operators.shapes import callee_name, dotted, float_value, name_terms, names_in
from bug_synth.operators.source import Site

# what builds text or containers: + and * on these join or repeat, they add or scale nothing
CONTAINERS = SEQUENCES + (cst.Dict, cst.Set, cst.DictComp, cst.SetComp, cst.GeneratorExp)
TEXT_CALLS = frozenset({"str", "repr", "format", "join", "list", "tuple", "sorted", "encode", "decode"})
MATH_CONSTANTS = frozenset({"math.pi", "math.e", "math.tau", "torch.pi", "np.pi", "numpy.pi"})
# what a call of constants is constant through: math.log(2), float("inf"), max(1, 2); not x.view(-1)
CONSTANT_CALLERS = frozenset({"math", "np", "numpy", "torch", "float", "int", "max", "min", "abs", "round"})
# names of clock readings and their differences (time.time() - t0): a wrong one is a wrong log line
TIMING = re.compile(r"time|perf_counter|monotonic|t\d|dt|elapsed\w*|\w+_time")
# calls whose arguments are sizes: dropping a factor there is a shape error, not a training bug
SIZE_CALLS = frozenset({"view", "reshape", "expand", "repeat", "tile", "unflatten", "split", "chunk", "narrow",
                        "zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange", "range",
                        "new_zeros", "new_ones", "new_empty", "new_full", "Linear", "Embedding"})
SHOWN_LIMIT = 50
# words of a name for a factor that scales (lr * g, softcap * tanh(...), resid_lambdas[i] * x), not the value
SCALE_WORDS = frozenset({"scale", "scales", "lambda", "lambdas", "ratio", "frac", "fraction", "coef", "coeff",
                         "factor", "mult", "multiplier", "beta", "alpha", "gamma", "gate", "temperature", "softcap",
                         "decay", "momentum", "gain", "rate", "weight", "weights", "lr", "lrm", "wd"})
# words of a name for a model dimension: a product of two (n_kv_head * head_dim) is a size
DIM_WORDS = frozenset({"dim", "embd", "head", "heads", "hidden", "channels", "features", "width"})
# calls that leave a value what it was (gate.unsqueeze(-1) is still the gate)
KEEPS = frozenset({"to", "type_as", "float", "half", "bfloat16", "unsqueeze", "view_as", "expand_as", "detach"})
MATRIX_NAME = re.compile(r"[A-Z]\d?")
DROPPED_TERMS = ("missing", "dropped", "left out", "without", "forgot", "omit", "no longer", "removed", "never")


def brief(source, node, fallback):
    """The node's code for a cause sentence: as written when short, a long call as f(...)."""
    code = source.code(node)
    if len(code) <= SHOWN_LIMIT and "\n" not in code:
        return code
    if isinstance(node, cst.Call) and len(source.code(node.func)) <= SHOWN_LIMIT:
        return f"{source.code(node.func)}(...)"
    return fallback


def _bare(node):
    """The operand without its brackets: the splice brackets it again where it needs them."""
    return node.with_changes(lpar=[], rpar=[]) if node.lpar else node


def _is_constant(node):
    """A number, math.pi, or a call or operation on those alone (math.log(2), float("inf"))."""
    if float_value(node) is not None or dotted(node) in MATH_CONSTANTS:
        return True
    if isinstance(node, cst.BinaryOperation):
        return _is_constant(node.left) and _is_constant(node.right)
    if not isinstance(node, cst.Call) or not node.args or dotted(node.func).split(".")[0] not in CONSTANT_CALLERS:
        return False
    return all(_is_constant(arg.value) or isinstance(arg.value, cst.SimpleString) for arg in node.args)


def _is_container(node):
    if isinstance(node, CONTAINERS) or is_path_join(node):
        return True
    if isinstance(node, cst.Call):
        return callee_name(node) in TEXT_CALLS
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Multiply)):
        return _is_container(node.left) or _is_container(node.right)
    return False


def _on_values(source, node):
    """An operation on numbers or tensors that training depends on."""
    return not (_is_container(node.left) or _is_container(node.right) or reports_only(source, node)
                or any(TIMING.fullmatch(name) for name in names_in(node, limit=99)))


def in_size(source, node, indices=True, roundings=True):
    """Inside the sizes of a view or a constructor, (with `roundings`) a rounding (a // b, a % b),
    or (with `indices`) an index or slice: integer bookkeeping whose error is a shape error."""
    child = node
    for ancestor in source.ancestors(node):
        if indices and isinstance(ancestor, (cst.Slice, cst.SubscriptElement)):
            return True
        if roundings and isinstance(ancestor, cst.BinaryOperation) and isinstance(
                ancestor.operator, (cst.FloorDivide, cst.Modulo)):
            return True
        if isinstance(ancestor, cst.Call) and child is not ancestor.func and callee_name(ancestor) in SIZE_CALLS:
            return True
        if isinstance(ancestor, cst.BaseStatement):
            return False
        child = ancestor
    return False


def _chained(node, operators):
    """A bare operand of the same chain (a + b in a + b + c): dropping it would drop several."""
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, operators) and not node.lpar


def _lost(source, node):
    """What a diagnosis names for a dropped operand: its names, or a literal as written."""
    terms = tuple(term for name in names_in(node, limit=3) for term in name_terms(name))
    return terms or (source.code(node).lower(),)


def operand_words(node):
    """The words of the names an operand reads as (through casts and indexing): resid_lambdas[i]
    reads as {"resid", "lambdas"}."""
    while True:
        if isinstance(node, cst.Subscript):
            node = node.value
        elif isinstance(node, cst.UnaryOperation):
            node = node.expression
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and callee_name(node) in KEEPS:
            node = node.func.value
        else:
            break
    if isinstance(node, cst.BinaryOperation):
        names = names_in(node, limit=99)
    else:
        names = [callee_name(node) if isinstance(node, cst.Call) else dotted(node).rsplit(".", 1)[-1]]
    return {word for name in names for word in name.lower().split("_") if word}


def _is_matrix(node):
    """X, A, A @ B: what linear algebra scales, never the scale."""
    return (isinstance(node, cst.Name) and bool(MATRIX_NAME.fullmatch(node.value))) or (
        isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply))


@family
class TermDropped(Family):
    name = "term-dropped"
    theme = "terms"
    description = "one term of a sum or difference left out: tok_emb + pos_emb -> tok_emb, x - x.mean() -> x"

    def sites(self, source):
        for node in source.nodes(cst.BinaryOperation):
            # offsets into a slice stay: tokens[offset:offset + n] -> tokens[offset:n] is a real data bug
            if (not isinstance(node.operator, (cst.Add, cst.Subtract)) or not _on_values(source, node)
                    or in_size(source, node, indices=False)):
                continue
            # literal offsets and epsilons are other families' (and x - 1 -> 1 is nobody's bug)
            if any(_is_constant(side) or is_eps(side) for side in (node.left, node.right)):
                continue
            drops = [(node.right, node.left)]
            if isinstance(node.operator, cst.Add) and not _chained(node.left, (cst.Add, cst.Subtract)):
                drops.append((node.left, node.right))
            whole = "the sum" if isinstance(node.operator, cst.Add) else "the difference"
            how = "added to" if isinstance(node.operator, cst.Add) else "subtracted from"
            for dropped, kept in drops:
                yield Site(
                    node, _bare(kept),
                    f"{brief(source, dropped, 'a term')} is no longer {how} {brief(source, kept, 'the rest')} "
                    f"{source.where(node)}: {brief(source, kept, 'one term')} is used where "
                    f"{brief(source, node, whole)} is meant",
                    (_lost(source, dropped), DROPPED_TERMS + ("not added", "not subtracted")))


@family
class FactorDropped(Family):
    name = "factor-dropped"
    theme = "terms"
    description = "a factor or divisor left out: logits * scale -> logits, 0.5 * x -> x, loss / n -> loss"

    def sites(self, source):
        for node in source.nodes(cst.BinaryOperation):
            if (not isinstance(node.operator, (cst.Multiply, cst.Divide)) or not _on_values(source, node)
                    or in_size(source, node)):
                continue
            dropped = self._dropped(node)
            # x * 1 is x, x * -1 -> x is a sign flipped, and n_head * head_dim is a size: a shape error
            if dropped is None or float_value(dropped) in (1, -1) or all(
                    operand_words(side) & DIM_WORDS for side in (node.left, node.right)):
                continue
            kept = node.left if dropped is node.right else node.right
            multiplies = isinstance(node.operator, cst.Multiply)
            done, whole = ("multiplied by", "the product") if multiplies else ("divided by", "the quotient")
            yield Site(
                node, _bare(kept),
                f"{brief(source, kept, 'the value')} is no longer {done} {brief(source, dropped, 'its factor')} "
                f"{source.where(node)}: {brief(source, kept, 'it')} is used where {brief(source, node, whole)} "
                f"is meant",
                (_lost(source, dropped), DROPPED_TERMS + ("not multiplied", "not divided", "unscaled", "unnormali")))

    @staticmethod
    def _dropped(node):
        """The operand a person forgets: the divisor; a constant coefficient (0.5 * x); the factor
        that scales (lr * g, gate * x, a * X); else the right one: the left is the value, or the
        rest of a chain (a * b * c)."""
        left_constant, right_constant = _is_constant(node.left), _is_constant(node.right)
        if left_constant and right_constant:
            return None
        if isinstance(node.operator, cst.Divide) or right_constant:
            return node.right
        if left_constant:
            return node.left
        if _chained(node.left, (cst.Multiply, cst.Divide)):
            return node.right
        left_scales, right_scales = bool(operand_words(node.left) & SCALE_WORDS), bool(operand_words(node.right) & SCALE_WORDS)
        if left_scales != right_scales:
            return node.left if left_scales else node.right
        if _is_matrix(node.left) != _is_matrix(node.right):
            return node.right if _is_matrix(node.left) else node.left
        return node.right
