"""Logic: two conditions combined the other way (a and b <-> a or b) or two masks (mask & valid <->
mask | valid); and a string option swapped for another that the same file passes to the same callee
in the same place (split="train" <-> "val", reduction="sum" <-> "mean", float("inf") <-> "nan").

`a or default` is a default, not a condition: an `and`/`or` whose value is assigned or returned is
changed only when one side is a comparison or a test (is_master, is_available()). Text handling,
file modes, environment variables and attribute names are not options of a computation."""

import re

import libcst as cst
import libcst.matchers as m

from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import reports_only
from bug_synth.operators.shapes import callee_name, name_terms, names_in, receiver_name
from bug_synth.operators.source import Site
from bug_synth.operators.terms import brief

SWAP = {cst.And: cst.Or, cst.Or: cst.And, cst.BitAnd: cst.BitOr, cst.BitOr: cst.BitAnd,
        cst.BitAndAssign: cst.BitOrAssign, cst.BitOrAssign: cst.BitAndAssign}
# a new operator that binds tighter than these needs them bracketed beneath it
LOOSER = {cst.And: (cst.Or,), cst.BitAnd: (cst.BitOr, cst.BitXor)}
TESTS = (cst.If, cst.While, cst.IfExp, cst.CompIf)
TEST_CALLS = frozenset({"isinstance", "hasattr", "callable", "all", "any", "exists", "startswith", "endswith"})
# names that read as flags (is_master, use_cache, ddp_enabled, last_step, master_process)
TEST_NAME = re.compile(r"(?:is|has|use|should|can)_\w+|\w*(?:enabled|last_step|master\w*)")
CONSTANTS = (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List,
             cst.Tuple, cst.Dict, cst.Set)
LOGIC_TERMS = ("`or`", "`and`", "'or'", "'and'", "either", "both", "union", "intersection", "conjunction",
               "disjunction", "logical", "&", "|", "any of", "all of")
# callees whose string arguments name text, files, variables or attributes, not a choice of computation
NOT_OPTIONS = frozenset({
    "split", "rsplit", "join", "replace", "strip", "lstrip", "rstrip", "startswith", "endswith", "encode", "decode",
    "format", "sub", "match", "search", "findall", "fullmatch", "compile", "partition", "find", "index", "count",
    "open", "Path", "joinpath", "with_suffix", "glob", "rglob", "makedirs", "mkdir", "getenv",
    "getattr", "setattr", "hasattr", "delattr", "register_buffer", "register_parameter", "register_module",
    "add_module", "get_submodule", "get_parameter", "get_buffer",
})
OPTION = re.compile(r"[\w.:<>|/+-]{1,40}")


def _is_constant(node):
    return isinstance(node, CONSTANTS) or (isinstance(node, cst.Name) and node.value in ("True", "False", "None"))


def _is_test(node):
    """A comparison, a `not`, or what reads as one: is_master, dist.is_available(), isinstance(...)."""
    if isinstance(node, cst.Comparison):
        return True
    if isinstance(node, cst.BooleanOperation):
        return _is_test(node.left) or _is_test(node.right)
    if isinstance(node, cst.UnaryOperation):
        return isinstance(node.operator, cst.Not)
    if isinstance(node, cst.Call):
        return callee_name(node) in TEST_CALLS or bool(TEST_NAME.fullmatch(callee_name(node)))
    if isinstance(node, cst.Attribute):
        return bool(TEST_NAME.fullmatch(node.attr.value))
    return isinstance(node, cst.Name) and bool(TEST_NAME.fullmatch(node.value))


def _in_test(source, node):
    """Whether the value of `node` only decides a branch (the test of an if, while, assert...)."""
    child = node
    for ancestor in source.ancestors(node):
        if isinstance(ancestor, TESTS):
            return getattr(ancestor, "test", None) is child
        if not isinstance(ancestor, (cst.BooleanOperation, cst.UnaryOperation)):
            return False
        child = ancestor
    return False


def _with_operator(node, new_type):
    old = node.operator
    operator = new_type(whitespace_before=old.whitespace_before, whitespace_after=old.whitespace_after)
    if isinstance(node, cst.AugAssign):
        return node.with_changes(operator=operator)
    looser = LOOSER.get(new_type, ())

    def tight(side):
        bare = isinstance(side, (cst.BooleanOperation, cst.BinaryOperation)) and not side.lpar
        if bare and isinstance(side.operator, looser):
            return side.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return side

    return node.with_changes(operator=operator, left=tight(node.left), right=tight(node.right))


@family
class LogicSwapped(Family):
    name = "logic-swapped"
    theme = "logic"
    description = "two conditions or masks combined the other way: a and b <-> a or b, mask & valid <-> mask | valid"

    def sites(self, source):
        for node in source.nodes(cst.BooleanOperation, cst.BinaryOperation, cst.AugAssign):
            new_type = SWAP.get(type(node.operator))
            if new_type is None or reports_only(source, node):
                continue
            left, right = (node.target, node.value) if isinstance(node, cst.AugAssign) else (node.left, node.right)
            if _is_constant(left) or _is_constant(right):
                continue
            boolean = isinstance(node, cst.BooleanOperation)
            if boolean and not _in_test(source, node) and not (_is_test(left) or _is_test(right)):
                continue  # a default (n = given or computed), not a condition
            yield self._site(source, node, _with_operator(node, new_type), boolean, left, right)

    @staticmethod
    def _site(source, node, new, boolean, left, right):
        new_and = isinstance(new.operator, (cst.And, cst.BitAnd, cst.BitAndAssign))
        if boolean:
            old_word, new_word = ("or", "and") if new_and else ("and", "or")
            effect = ("the condition holds only when both do, not when either does" if new_and
                      else "the condition holds when either does, not only when both do")
        else:
            old_word, new_word = ("|", "&") if new_and else ("&", "|")
            effect = ("the mask keeps only the positions both keep, not those either keeps" if new_and
                      else "the mask keeps the positions either keeps, not only those both keep")
        operands = tuple(term for name in names_in(left, 2) + names_in(right, 2) for term in name_terms(name))
        return Site(
            node, new,
            f"{brief(source, left, 'the left side')} is joined to {brief(source, right, 'the right side')} by "
            f"`{new_word}` where `{old_word}` is meant {source.where(node)}: {effect}",
            (operands or ("condition", "mask"), LOGIC_TERMS))


def _slots(call):
    """(slot, arg) for each argument: its keyword, or its place among the positional ones."""
    place = 0
    for arg in call.args:
        if arg.keyword is not None:
            yield arg.keyword.value, arg
        elif arg.star:
            return  # what follows *args has no known place
        else:
            yield place, arg
            place += 1


def _option(arg):
    """The text of a plain string argument that reads as an option ("train", "max-autotune"), else None."""
    value = arg.value
    if not isinstance(value, cst.SimpleString) or value.prefix.lower() not in ("", "u"):
        return None
    text = value.evaluated_value
    return text if OPTION.fullmatch(text) and "\\" not in value.value else None


def _is_option_call(call):
    return callee_name(call) not in NOT_OPTIONS and "environ" not in receiver_name(call)


def _options(source):
    """{(callee, slot): the option texts the file passes there, in file order}."""
    found = {}
    for call in m.findall(source.module, m.Call()):
        if not _is_option_call(call):
            continue
        for slot, arg in _slots(call):
            text = _option(arg)
            if text is not None and text not in found.setdefault((callee_name(call), slot), []):
                found[callee_name(call), slot].append(text)
    return found


@family
class LiteralSwapped(Family):
    name = "literal-swapped"
    theme = "logic"
    description = "a string option replaced by another the file passes in the same place: split=\"train\" <-> \"val\""

    def sites(self, source):
        options = source.memo("string-options", _options)
        for call in source.nodes(cst.Call):
            callee = callee_name(call)
            if not callee or not _is_option_call(call) or reports_only(source, call):
                continue
            for slot, arg in _slots(call):
                old = _option(arg)
                if old is None:
                    continue
                for new in options[callee, slot]:
                    if new != old:
                        yield self._site(source, callee, slot, arg, old, new)

    @staticmethod
    def _site(source, callee, slot, arg, old, new):
        quote = arg.value.quote
        if isinstance(slot, str):
            wrong = f"{slot}={new!r} is passed where {slot}={old!r} is meant in {callee}(...)"
        else:
            wrong = f"{callee}(...) is given {new!r} where {old!r} is meant as argument {slot + 1}"
        return Site(
            arg.value, arg.value.with_changes(value=f"{arg.value.prefix}{quote}{new}{quote}"),
            f"{wrong} {source.where(arg)}",
            ((old.lower(), new.lower()), ("instead", "wrong", "rather than", "meant", "swap", "mix", "should",
                                          callee.lower()) + ((slot.lower(),) if isinstance(slot, str) else ())))
