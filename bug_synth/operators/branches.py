"""Branches forced: an `if` that decides what is computed or trained loses its decision, so one
branch always runs and the other never: `if c: A else: B` -> A alone, or B alone, and `if c: A`
-> A (the warmup branch of a schedule used after warmup, dropout applied in evaluation, work meant
for the master rank done on every rank, weight decay given to every parameter).

Left alone, as no bug or no bug of this kind:
* early exits (guard-dropped removes those; a forced `raise`, `continue` or `break` decides nothing),
  import fallbacks, and elif chains;
* `x is None` tests (forced, code runs on a None: a crash) and defaults filled in (`if n == -1:
  n = ...`);
* tests of the device, precision, kernels, files, the environment, resuming or the distributed
  setup (`if ddp: loss = loss / world_size`): forced, they crash or change nothing on one machine;
* tests of sizes alone (an empty case guarded, or the cheaper of two equal computations), of text
  (a parser's or formatter's), of a cache, and `if r != 1.0:` (forced, the body runs where it
  changes nothing);
* branches that only report, time, save or load checkpoints, evaluate or sample: forced, the run
  trains the same, only slower.
"""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import ASSIGNS, reports_only
from bug_synth.operators.shapes import callee_name, dotted, names_in
from bug_synth.operators.source import Site, is_message_call
from bug_synth.operators.terms import TIMING

EXITS = m.Raise() | m.Continue() | m.Break()
# words of a test about where and how the run happens, not what it computes: forced, such a test
# crashes or changes nothing on one machine (device, precision, kernels, files, environment, resuming)
PLACE_WORDS = frozenset({"device", "cuda", "mps", "cpu", "available", "environ", "exists", "isfile", "isdir",
                         "backend", "compile", "compiled", "kernel", "major", "capability", "version", "dtype",
                         "float16", "bfloat16", "fp16", "amp", "autocast", "resume", "resuming"})
# ... or whether it is distributed (a branch that names the ranks: invisible on one GPU)
DIST_WORDS = frozenset({"ddp", "dist", "distributed", "world", "initialized", "rank", "local"})
MASTER_WORDS = frozenset({"master", "main"})  # forcing master-only work onto every rank is a real bug
# words of text handling: a parser's or formatter's test decides nothing a model trains on
TEXT_WORDS = frozenset({"text", "word", "char", "chars", "line", "string", "expr", "slot", "match", "said",
                        "name"})
TEXT_CALLS = frozenset({"startswith", "endswith", "isdigit", "isalpha", "isalnum", "isspace", "isupper",
                        "islower", "match", "search", "fullmatch"})
# words of a count or size: a test of sizes alone guards an empty case or picks the cheaper of two
# equal computations (a tall or a wide matrix)
SIZE_WORDS = frozenset({"len", "size", "numel", "dim", "ndim", "shape", "num", "count", "length", "padded",
                        "chunk"})
FORMATTERS = frozenset({"format", "__repr__", "__str__", "extra_repr"})
# calls that keep a record or wait, and compute nothing a run trains on
SIDE_CALL = re.compile(r"save|checkpoint|synchronize|barrier|empty_cache|flush|sleep|mkdir|makedirs|dump|plot")
# calls a branch may schedule that do not train: loading or saving state, evaluating, sampling
SCHEDULED_CALL = re.compile(r"save|load|checkpoint|evaluat|estimate_loss|generate|sample")
SHOWN_LIMIT = 60
FORCED_TERMS = ("always", "never", "unconditional", "regardless", "ignor", "every", "forced", "skipped",
                "no longer", "even when", "even if", "all ranks")


def _words(node):
    """The words of every name and attribute in a node (dist and self included), lowercase."""
    return {word for name in m.findall(node, m.Name()) for word in name.value.lower().split("_") if word}


def _leaves(test):
    """The conditions a test combines with and, or and not."""
    if isinstance(test, cst.BooleanOperation):
        return _leaves(test.left) + _leaves(test.right)
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _leaves(test.expression)
    return [test]


def _is_text_test(leaf):
    if isinstance(leaf, cst.Call) and callee_name(leaf) in TEXT_CALLS:
        return True
    return bool(_words(leaf) & TEXT_WORDS)


def _is_size(node):
    if isinstance(node, cst.Integer):
        return True
    if isinstance(node, cst.BinaryOperation):
        return _is_size(node.left) and _is_size(node.right)
    return bool(_words(node) & SIZE_WORDS)


def _is_size_test(leaf):
    return isinstance(leaf, cst.Comparison) and all(
        _is_size(operand) for operand in (leaf.left, *(c.comparator for c in leaf.comparisons)))


def _tests_none(test):
    return bool(m.findall(test, m.ComparisonTarget(operator=m.Is() | m.IsNot(), comparator=m.Name("None"))))


def _skips_identity(branch):
    """`if ratio != 1.0: scale = ratio ** 0.5`: forced, the body runs only where it changes nothing."""
    test = branch.test
    return (branch.orelse is None and isinstance(test, cst.Comparison) and len(test.comparisons) == 1
            and isinstance(test.comparisons[0].operator, cst.NotEqual)
            and isinstance(test.comparisons[0].comparator, (cst.Integer, cst.Float)))


def _reads_cache(test):
    """`if word not in self._cache:`: forced, a cached value is only computed again."""
    return "cache" in _words(test) and bool(m.findall(test, m.ComparisonTarget(operator=m.In() | m.NotIn())))


def _about_setup(test):
    words = _words(test)
    return bool(words & PLACE_WORDS) or (bool(words & DIST_WORDS) and not words & MASTER_WORDS)


def _fills_default(branch):
    """`if n == -1: n = ...`, `if not name: name = ...`: a default filled in for a value not given."""
    test = branch.test
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        checked = test.expression
    elif isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and isinstance(
            test.comparisons[0].operator, (cst.Equal, cst.Is)):
        checked = test.left
    else:
        return False
    name = dotted(checked)
    assigned = {dotted(t.target) for a in m.findall(branch.body, m.Assign()) for t in a.targets}
    return bool(name) and name in assigned


def _is_side_call(node):
    if not isinstance(node, cst.Call):
        return False
    return is_message_call(node) or bool(SIDE_CALL.search(callee_name(node).lower()))


def is_record(source, statement):
    """A statement that only reports, times, frees or saves (an if or loop of such statements too)."""
    if isinstance(statement, cst.SimpleStatementLine):
        return all(isinstance(small, (cst.Pass, cst.Del))
                   or (isinstance(small, cst.Expr) and _is_side_call(small.value))
                   or (isinstance(small, ASSIGNS) and _names_timing(small))
                   for small in statement.body) or reports_only(source, statement)
    if isinstance(statement, (cst.If, cst.For, cst.While, cst.With)):
        blocks = [statement.body] + ([statement.orelse.body] if getattr(statement, "orelse", None) else [])
        return all(is_record(source, s) for block in blocks for s in block.body)
    return False


def _names_timing(assign):
    targets = [t.target for t in assign.targets] if isinstance(assign, cst.Assign) else [assign.target]
    names = [n.value for target in targets for n in m.findall(target, m.Name())]
    return bool(names) and all(TIMING.fullmatch(name) for name in names)


def _summary(source, block):
    """The first statement of a block, for a cause sentence ("... and 2 more")."""
    first = block.body[0]
    code = source.code(first)
    if not isinstance(first, cst.SimpleStatementLine) or len(code) > SHOWN_LIMIT:
        code = f"{code.splitlines()[0][:SHOWN_LIMIT]}..."
    more = len(block.body) - 1
    return code + (f" and {more} more statement{'s' if more > 1 else ''}" if more else "")


@family
class BranchForced(Family):
    name = "branch-forced"
    theme = "branches"
    description = "an if's decision forced: if c: A else: B -> A alone or B alone, if c: A -> A"

    def sites(self, source):
        for branch in source.nodes(cst.If):
            if not self._decides(source, branch):
                continue
            test = source.code(branch.test)
            terms = (names_in(branch.test, limit=3) + ("condition", "branch", "`if", "check", "test"), FORCED_TERMS)
            body = _summary(source, branch.body)
            if branch.orelse is None:
                yield Site(
                    branch, tuple(branch.body.body),
                    f"the body of `if {test}:` always runs {source.where(branch)}: {body} runs also where "
                    f"{test} is false, where the test was meant to decide",
                    terms)
                continue
            other = _summary(source, branch.orelse.body)
            yield Site(
                branch, tuple(branch.body.body),
                f"the if branch of `if {test}:` always runs {source.where(branch)}: {body} is done also where "
                f"{test} is false, and the else branch ({other}) never runs",
                terms)
            yield Site(
                branch, tuple(branch.orelse.body.body),
                f"the else branch of `if {test}:` always runs {source.where(branch)}: {other} is done also where "
                f"{test} holds, and the if branch ({body}) never runs",
                terms)

    @staticmethod
    def _decides(source, branch):
        """An if or if/else (no elif) that chooses what is computed: the rules in the docstring."""
        parent = source.parent(branch)
        if isinstance(parent, cst.If) and parent.orelse is branch:
            return False  # an elif
        if branch.orelse is not None and not isinstance(branch.orelse, cst.Else):
            return False
        blocks = [branch.body] + ([branch.orelse.body] if branch.orelse is not None else [])
        if not all(isinstance(block, cst.IndentedBlock) for block in blocks):
            return False
        if any(m.findall(block, EXITS | m.Import() | m.ImportFrom()) for block in blocks):
            return False
        if branch.orelse is None and m.findall(branch.body, m.Return()):
            return False  # an early return: guard-dropped's
        test, leaves = branch.test, _leaves(branch.test)
        if (_tests_none(test) or _about_setup(test) or _reads_cache(test) or all(map(_is_text_test, leaves))
                or all(map(_is_size_test, leaves)) or _skips_identity(branch)
                or (branch.orelse is None and _fills_default(branch))):
            return False
        function = source.enclosing_function(branch)
        if reports_only(source, branch) or (function is not None and function.name.value in FORMATTERS):
            return False
        calls = [callee_name(call).lower() for block in blocks for call in m.findall(block, m.Call())]
        if any(SCHEDULED_CALL.search(name) for name in calls) or any(_words(block) & DIST_WORDS for block in blocks):
            return False
        return not all(is_record(source, s) for block in blocks for s in block.body)
