"""One parsed file, as the families see it: its nodes indexed by type, each with the function that
holds it and whether a family may touch it; and the splice that turns one change into a mutant.

A family never rewrites a file. It names a node and what replaces it (a `Site`), or consecutive
statements of one block in a new order (a `Reorder`); `Source.mutant` does the rest the same way
for every family:

* the statement that holds the change is generated again by libcst, at its own indentation, and
  spliced over its old text. Its old text is generated the same way first and must come out
  byte for byte as it stands in the file, so everything outside the statement is the original;
* the contiguous comment lines directly above that statement and its trailing comment go with
  it: a comment that narrates the original would contradict the bug and point at it;
* the result must compile, to a program that differs from the original's (so its AST differs:
  no edit of whitespace, brackets or comments alone), else there is no mutant.

Where a family may look: inside functions and methods (decorators and defaults included), and in
the module-level statements a script runs (nanochat's training loop is at module level; a mutant
there has function ""). Never in imports, CONSTANT = ... tables, class bodies (dataclass fields),
an `if __name__ == "__main__":` block, a function that builds an ArgumentParser, a statement that
adds or parses arguments, a print/log/format call, or an f-string. No family edits string
literals, so docstrings are never changed.
"""

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType

import libcst as cst
import libcst.matchers as m
from libcst._nodes.internal import CodegenState  # the state Module.code_for_node uses, with an indent
from libcst.metadata import ExpressionContext, ExpressionContextProvider, MetadataWrapper, PositionProvider

from bug_synth.operators.mutant import Mutant
from bug_synth.operators.shapes import callee_name, receiver_name

# callees whose arguments are messages, not computation
LOG_CALLEES = frozenset({
    "print", "print0", "pprint", "log", "log0", "info", "debug", "warning", "warn", "error", "exception",
    "critical", "format", "write", "set_description", "set_postfix", "add_scalar", "echo", "secho",
})
LOG_RECEIVERS = frozenset({"logger", "logging", "log", "wandb", "warnings", "sys"})
ARGPARSE_CALLEES = frozenset({
    "add_argument", "add_argument_group", "add_mutually_exclusive_group", "parse_args", "parse_known_args",
    "set_defaults", "ArgumentParser",
})
# a new node of these kinds needs brackets under a parent of those
LOOSE = (cst.BinaryOperation, cst.BooleanOperation, cst.Comparison, cst.IfExp, cst.UnaryOperation, cst.Lambda)
TIGHT_PARENTS = (cst.BinaryOperation, cst.UnaryOperation, cst.Attribute, cst.Subscript, cst.Call, cst.Comparison,
                 cst.BooleanOperation, cst.Await)


@dataclass(frozen=True)
class Site:
    """Replace `node` with `new`; None removes it. A statement may also become several statements
    (a tuple), e.g. the body of a `with` block it wrapped."""
    node: cst.CSTNode
    new: cst.CSTNode | tuple[cst.BaseStatement, ...] | None
    cause: str
    cause_terms: tuple[tuple[str, ...], ...]
    shown: tuple[str, str] | None = None  # (before, after) to show instead of whole nodes (a decorated def)


@dataclass(frozen=True)
class Reorder:
    """Consecutive statements of one block put in a new order: `order` lists their indexes as
    they come to stand. `moved` is the statement that moved (its line is the mutant's)."""
    statements: tuple[cst.BaseStatement, ...]
    order: tuple[int, ...]
    moved: cst.BaseStatement
    cause: str
    cause_terms: tuple[tuple[str, ...], ...]


def swap(first, second, cause, cause_terms):
    """Two adjacent statements trade places."""
    return Reorder((first, second), (1, 0), first, cause, cause_terms)


def _is_main_guard(node):
    if not isinstance(node, cst.If) or not isinstance(node.test, cst.Comparison):
        return False
    names = {n.value for n in (node.test.left, *(t.comparator for t in node.test.comparisons))
             if isinstance(n, cst.Name)}
    return "__name__" in names


def is_message_call(node):
    """A print or log call: what it gets is reported, never trained on."""
    return isinstance(node, cst.Call) and (
        callee_name(node) in LOG_CALLEES or receiver_name(node).split(".")[0] in LOG_RECEIVERS)


class _Indexer(cst.CSTVisitor):
    """One walk: every node's parent, enclosing definitions and statement, and whether a family may
    touch it (the rules in the module docstring)."""

    def __init__(self):
        super().__init__()
        self.parent, self.scope, self.statement, self.function, self.off_limits = {}, {}, {}, {}, set()
        self.definition, self.top = {}, {}
        self.by_type = {}
        self.order = []
        self._stack, self._names, self._statements, self._functions, self._definitions = [], [], [], [], []
        self.argparse_calls = []

    def on_visit(self, node):
        parent = self._stack[-1] if self._stack else None
        self.parent[node] = parent
        if isinstance(node, (cst.ClassDef, cst.FunctionDef)):
            self._names.append(node.name.value)
            self._definitions.append(node)
        if isinstance(node, cst.FunctionDef):
            self._functions.append(node)
        if isinstance(node, cst.BaseStatement):
            self._statements.append(node)
        self.scope[node] = ".".join(self._names)
        self.definition[node] = self._definitions[-1] if self._definitions else None
        self.top[node] = node if isinstance(parent, cst.Module) else self.top.get(parent)
        self.statement[node] = self._statements[-1] if self._statements else None
        self.function[node] = self._functions[-1] if self._functions else None
        if (parent in self.off_limits or _is_main_guard(node) or is_message_call(node)
                or isinstance(node, cst.FormattedString)):
            self.off_limits.add(node)
        if isinstance(node, cst.Call) and callee_name(node) in ARGPARSE_CALLEES:
            self.argparse_calls.append(node)
        self.by_type.setdefault(type(node), []).append(node)
        self.order.append(node)
        self._stack.append(node)
        return True

    def on_leave(self, original_node):
        self._stack.pop()
        if isinstance(original_node, (cst.ClassDef, cst.FunctionDef)):
            self._names.pop()
            self._definitions.pop()
        if isinstance(original_node, cst.FunctionDef):
            self._functions.pop()
        if isinstance(original_node, cst.BaseStatement):
            self._statements.pop()


class Source:
    """A parsed file: the module, positions, and where families may look."""

    def __init__(self, path, text):
        self.path, self.text = path, text
        self.module = cst.parse_module(text)
        self._wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.positions = self._wrapper.resolve(PositionProvider)
        self._contexts = None
        index = _Indexer()
        self.module.visit(index)
        self._index = index
        self._line_starts = _line_starts(text)
        self._bad_statements = {index.statement[c] for c in index.argparse_calls}
        self._script_statements = {}
        self._bad_functions = {index.function[c] for c in index.argparse_calls if callee_name(c) == "ArgumentParser"}
        self._original_tree = None
        self._memo = {}

    # -- where a family may look

    def usable(self, node):
        index = self._index
        if node in index.off_limits or index.statement.get(node) in self._bad_statements:
            return False
        if index.function.get(node) is not None:
            # in a function or method (not in the body of a class defined inside one)
            return (index.function[node] not in self._bad_functions
                    and not isinstance(index.definition[node], cst.ClassDef))
        # at module level: the statements a script runs, not its imports, constants or classes
        return index.definition.get(node) is None and self._script_statement(index.top.get(node))

    def _script_statement(self, top):
        if top not in self._script_statements:
            self._script_statements[top] = _is_script_statement(top)
        return self._script_statements[top]

    def nodes(self, *types):
        """Usable nodes of these types, in the order they appear in the file."""
        if len(types) == 1:
            found = self._index.by_type.get(types[0], [])
        else:
            found = [n for n in self._index.order if isinstance(n, types)]
        return [n for n in found if self.usable(n)]

    def memo(self, key, compute):
        """compute(self), once per file: what several families or sites of one family ask."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]

    def is_load(self, node):
        """A Name or Attribute that is read, not assigned or deleted."""
        return self._context(node) == ExpressionContext.LOAD

    def is_store(self, node):
        return self._context(node) == ExpressionContext.STORE

    def _context(self, node):
        if self._contexts is None:
            self._contexts = self._wrapper.resolve(ExpressionContextProvider)
        return self._contexts.get(node)

    def parent(self, node):
        return self._index.parent.get(node)

    def ancestors(self, node):
        node = self.parent(node)
        while node is not None:
            yield node
            node = self.parent(node)

    def function(self, node):
        """The dotted path of the classes and functions that hold the node ("GPT.forward")."""
        return self._index.scope.get(node, "")

    def enclosing_function(self, node):
        return self._index.function.get(node)

    def where(self, node):
        """"in GPT.forward", or "at module level": for cause sentences."""
        return f"in {self.function(node)}" if self.function(node) else "at module level"

    def line(self, node):
        if isinstance(node, cst.FunctionDef) and node.decorators:
            node = node.decorators[0]
        return self.positions[node].start.line

    def code(self, node):
        """A node's source, on one line when it fits."""
        if isinstance(node, cst.BaseStatement):
            node = node.with_changes(leading_lines=())
        return one_line(self.module.code_for_node(node))

    def block_of(self, statement):
        """The statements of the block that holds `statement` (empty when it is not in a block)."""
        parent = self.parent(statement)
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            return list(parent.body)
        return []

    def enclosing_statement(self, node):
        statement = node if isinstance(node, cst.BaseStatement) else self._index.statement.get(node)
        # an `elif` is an If nested in the orelse of the If it continues: only the first one
        # generates as a statement
        while isinstance(self.parent(statement), cst.If) and self.parent(statement).orelse is statement:
            statement = self.parent(statement)
        return statement

    # -- from a change to a mutant

    def mutant(self, family, site):
        """The Mutant for a Site or Reorder, or None when it cannot be spliced or changes nothing."""
        if isinstance(site, Reorder):
            statements, node = site.statements, site.moved
            replacement = _reordered(site.statements, site.order)
            before = "\n".join(self.code(s) for s in statements)
            after = "\n".join(self.code(statements[i]) for i in site.order)
        else:
            statement = self.enclosing_statement(site.node)
            if statement is None:
                return None
            statements, replacement = (statement,), self._replacement(statement, site)
            if replacement is None:
                return None
            node, before = site.node, self.code(site.node)
            after = _code_of_new(self.module, site.new)
            if site.shown is not None:
                before, after = site.shown
        # comments above a statement that kept its place stay
        keep_comments = isinstance(site, Reorder) and site.order[0] == 0
        text = self.spliced_text(statements, replacement, self.line(statements[0]), cut_comments=not keep_comments)
        if text is None:
            return None
        return Mutant(family=family, file=self.path, line=self.line(node), function=self.function(node),
                      before=before, after=after, text=text, cause=site.cause, cause_terms=site.cause_terms)

    def spliced_text(self, statements, replacement, first_line, cut_comments=True):
        """The file's text with the consecutive `statements` replaced, or None when it cannot be
        spliced or compiles as before (compared from the statement at first_line: one
        statement of a script each)."""
        spliced = self._splice(statements, replacement, cut_comments=cut_comments)
        if spliced is None or not self._compiles_differently(*spliced, first_line):
            return None
        return spliced[0]

    def _replacement(self, statement, site):
        if site.node is statement:
            if site.new is None:
                # a block cannot be left empty
                return () if len(self.block_of(statement)) > 1 else None
            if isinstance(site.new, tuple):
                return site.new  # a block's statements, unwrapped: theirs are their own comments
            return (_quiet(site.new, first=True),)
        new = cst.RemovalSentinel.REMOVE if site.new is None else self._bracketed(site.node, site.new)
        path = set(self.ancestors(site.node))
        if statement not in path:
            return None
        changed = statement.visit(_ReplaceOnPath(site.node, new, path))
        if not isinstance(changed, cst.BaseStatement):
            return None
        return (_quiet(changed, first=True),)

    def _bracketed(self, node, new):
        """`new` in brackets where it replaces an operand that binds tighter than it does (a + b
        in place of a call under a *): brackets never change the AST, a missing pair would."""
        if isinstance(new, LOOSE) and not new.lpar and isinstance(self.parent(node), TIGHT_PARENTS):
            return new.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return new

    def _splice(self, statements, replacement, cut_comments=True):
        """(the mutated text, the first line of the original it changes), or None."""
        first = statements[0]
        start_line = self.line(first)
        line_start = self._line_starts[start_line - 1]
        indent = self.text[line_start:line_start + self.positions[first].start.column]
        if isinstance(first, cst.FunctionDef) and first.decorators:
            indent = self.text[line_start:line_start + self.positions[first.decorators[0]].start.column]
        if indent.strip():
            return None
        original = (first.with_changes(leading_lines=()), *statements[1:])
        old_code = self._generate(original, indent)
        if self.text[line_start:line_start + len(old_code)] != old_code:
            return None  # libcst does not regenerate this statement as written: leave it alone
        comment_lines = _narrating_comments(first) if cut_comments else 0
        if any(not self._line(n).strip().startswith("#") for n in range(start_line - comment_lines, start_line)):
            comment_lines = 0
        cut = self._line_starts[start_line - 1 - comment_lines]
        text = self.text[:cut] + self._generate(replacement, indent) + self.text[line_start + len(old_code):]
        return text, start_line - comment_lines

    def _line(self, number):
        return self.text[self._line_starts[number - 1]:self._line_starts[number]]

    def _generate(self, statements, indent):
        state = CodegenState(default_indent=self.module.default_indent, default_newline=self.module.default_newline)
        state.indent_tokens.append(indent)
        for statement in statements:
            statement._codegen(state)
        return "".join(state.tokens)

    def _compiles_differently(self, text, first_changed, line):
        """Whether the mutated text compiles to a different program than the original. Only the
        top-level statement that holds `line` (the changed statement's) can differ, and the lines
        before `first_changed` and after that statement are the original's, so only that
        statement's text is compiled and compared. Compared as bytecode without line numbers: the
        same AST compiles to the same bytecode, so a different one means a different AST (and an
        edit that compiles to the same program changes nothing a run could show)."""
        if self._original_tree is None:
            self._original_tree = ast.parse(self.text)
            self._original_programs = {}
        body = self._original_tree.body
        index = next((i for i, node in enumerate(body) if _first_line(node) <= line <= node.end_lineno), None)
        if index is None:
            return False
        start, end = min(_first_line(body[index]), first_changed), body[index].end_lineno
        lines = text.splitlines(keepends=True)
        unchanged_after = len(self.text.splitlines()) - end
        chunk = "".join(lines[start - 1:len(lines) - unchanged_after])
        if index not in self._original_programs:
            original = "".join(self.text.splitlines(keepends=True)[_first_line(body[index]) - 1:end])
            self._original_programs[index] = _program(compile(original, self.path, "exec"))
        try:
            # symbol-table errors (a name both global and local...) stay inside their top-level statement
            program = _program(compile(chunk, self.path, "exec"))
        except (SyntaxError, ValueError):
            return False
        return program != self._original_programs[index]


def program_of(text, path="<mutant>"):
    """What a text compiles to, as a comparable value: equal for texts with the same AST (so a
    cheap first test before comparing ASTs)."""
    return _program(compile(text, path, "exec"))


def _program(code):
    """A code object as a comparable value, without line numbers and file name."""
    constants = tuple(_program(c) if isinstance(c, CodeType) else (type(c).__name__, repr(c)) for c in code.co_consts)
    return (code.co_code, code.co_exceptiontable, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags,
            code.co_name, constants)


def _first_line(node):
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


class _ReplaceOnPath(cst.CSTTransformer):
    """Replace one node, walking only down the path to it (deep_replace walks the whole subtree)."""

    def __init__(self, old, new, path):
        super().__init__()
        self.old, self.new, self.path = old, new, path

    def on_visit(self, node):
        return node in self.path

    def on_leave(self, original_node, updated_node):
        return self.new if original_node is self.old else updated_node


CONSTANT_NAME = re.compile(r"_*[A-Z][A-Z0-9_]*|__\w+__")


def _is_script_statement(top):
    """A module-level statement that computes (a training script's loop), not an import, a
    definition or a CONSTANT = ... table."""
    if top is None or isinstance(top, (cst.FunctionDef, cst.ClassDef)) or m.findall(top, m.Import() | m.ImportFrom()):
        return False
    if isinstance(top, cst.SimpleStatementLine):
        targets = [t.target for s in top.body if isinstance(s, cst.Assign) for t in s.targets]
        targets += [s.target for s in top.body if isinstance(s, cst.AnnAssign)]
        names = [n for target in targets for n in m.findall(target, m.Name())]
        if names and all(CONSTANT_NAME.fullmatch(n.value) for n in names):
            return False
    return True


def _line_starts(text):
    starts, offset = [0], 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        starts.append(offset)
    return starts


def _reordered(statements, order):
    """The statements in their new order. Each keeps the blank lines above its old place; one that
    moved loses its comments (they narrate where it was); the first has no leading lines (the text
    above the splice keeps them)."""
    new = []
    for position, index in enumerate(order):
        statement = statements[index]
        if position == 0:
            new.append(_quiet(statement, first=True) if index != 0 else statement.with_changes(leading_lines=()))
        elif index != position:
            new.append(_quiet(statement, leading_from=statements[position]))
        else:
            new.append(statement)
    return tuple(new)


def _narrating_comments(statement):
    """How many comment lines sit directly above the statement (no blank line between)."""
    count = 0
    for line in reversed(statement.leading_lines):
        if line.comment is None:
            break
        count += 1
    return count


def _quiet(statement, first=False, leading_from=None):
    """The statement without the comments that narrated it: no trailing comment, and no comment
    lines above it (the first statement of a splice has none: those lines are cut from the text)."""
    leading = statement.leading_lines if leading_from is None else leading_from.leading_lines
    statement = statement.with_changes(leading_lines=() if first else [ln for ln in leading if ln.comment is None])
    if isinstance(statement, cst.SimpleStatementLine) and statement.trailing_whitespace.comment is not None:
        statement = statement.with_changes(trailing_whitespace=statement.trailing_whitespace.with_changes(
            whitespace=cst.SimpleWhitespace(""), comment=None))
    body = getattr(statement, "body", None)
    if isinstance(body, cst.IndentedBlock) and body.header.comment is not None:
        statement = statement.with_changes(body=body.with_changes(header=body.header.with_changes(
            whitespace=cst.SimpleWhitespace(""), comment=None)))
    return statement


def _code_of_new(module, new):
    if new is None:
        return ""
    if isinstance(new, tuple):
        return "\n".join(one_line(module.code_for_node(s.with_changes(leading_lines=()))) for s in new)
    if isinstance(new, cst.BaseStatement):
        new = new.with_changes(leading_lines=())
    return one_line(module.code_for_node(new))


def one_line(code, width=160):
    """Code on one line when joining its lines reads the same and fits (a call split over lines);
    a block, or anything longer, as it is."""
    code = code.strip("\n")
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    if len(lines) <= 1:
        return code.strip()
    if any(line.startswith("#") or line.endswith(":") for line in lines):
        return code
    joined = lines[0]
    for line in lines[1:]:
        glue = "" if joined.endswith(("(", "[", "{")) or line.startswith((")", "]", "}")) else " "
        joined += glue + line
    return joined if len(joined) <= width else code


@lru_cache(maxsize=64)
def parse(path, text):
    """The Source of a file, or None when libcst cannot parse it."""
    try:
        return Source(path, text)
    except cst.ParserSyntaxError:
        return None
