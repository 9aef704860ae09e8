"""Syntax-located edits with libcst: find a construct by its shape (a libcst matcher) inside a
named function, and change it, keeping the rest of the file byte for byte.

Every helper insists on exactly one match: a construct that is missing, or ambiguous, raises
EditError instead of silently changing something else.

    replace_node(source, "GPT.forward", m.Call(func=m.Attribute(attr=m.Name("zero_grad"))), new)
    remove_statement(source, "main", m.Call(func=m.Attribute(attr=m.Name("zero_grad"))))
    move_statement(source, "main", what=..., after=...)   # or before=...
    drop_comments_above(source, "main", m.Call(func=m.Name("corpus_path")))
    remove_unused_import(source, "math")

Nothing but the bug may be wrong: an edit also takes what it orphans, the comment that narrated
the statement it changed (drop_comments_above; remove_statement takes the comment lines above the
statement it removes) and the import or local its change left unread.

`scope` is a dotted path of class and function names ("CausalSelfAttention._explicit_attention"),
matched as a suffix of the enclosing definitions, or None for the whole module.
"""

import libcst as cst
import libcst.matchers as m

from bug_catalog.registry import EditError


def parse_expression(code):
    return cst.parse_expression(code)


def parse_statement(code):
    return cst.parse_statement(code)


class _Scoped(cst.CSTTransformer):
    """Tracks the dotted path of enclosing classes and functions."""

    def __init__(self, scope):
        super().__init__()
        self.scope = scope.split(".") if scope else []
        self.stack = []

    def in_scope(self):
        return not self.scope or self.stack[-len(self.scope):] == self.scope

    def visit_ClassDef(self, node):
        self.stack.append(node.name.value)

    def leave_ClassDef(self, original, updated):
        self.stack.pop()
        return updated

    def visit_FunctionDef(self, node):
        self.stack.append(node.name.value)

    def leave_FunctionDef(self, original, updated):
        self.stack.pop()
        return updated


class _ReplaceNode(_Scoped):
    def __init__(self, scope, matcher, make):
        super().__init__(scope)
        self.matcher, self.make, self.count = matcher, make, 0

    def on_leave(self, original, updated):
        if self.in_scope() and m.matches(original, self.matcher):
            self.count += 1
            return self.make(updated)
        return super().on_leave(original, updated)


def _statement_matcher(matcher):
    """A simple statement line that contains the construct anywhere inside it."""
    return m.SimpleStatementLine() & m.MatchIfTrue(lambda node: bool(m.findall(node, matcher)))


def _transform(source, transformer):
    module = cst.parse_module(source)
    new_module = module.visit(transformer)
    if transformer.count != 1:
        where = f" in {transformer.scope and '.'.join(transformer.scope) or 'the module'}"
        raise EditError(f"expected exactly one match{where}, found {transformer.count}")
    return new_module.code


def replace_node(source, scope, matcher, make):
    """Replace the one node matching `matcher` with make(node)."""
    return _transform(source, _ReplaceNode(scope, matcher, make))


def replace_with_code(source, scope, matcher, code):
    """Replace the one expression matching `matcher` with the expression `code`."""
    return replace_node(source, scope, matcher, lambda node: parse_expression(code))


def remove_statement(source, scope, matcher):
    """Delete the one statement line that is or contains the construct."""
    return replace_node(source, scope, _statement_matcher(matcher), lambda node: cst.RemovalSentinel.REMOVE)


def drop_comments_above(source, scope, matcher):
    """Delete the comment lines directly above the one statement line that contains the construct
    (blank lines stay). A comment that narrates a statement points at the bug once the statement is
    edited; with no comment there, nothing changes."""

    def make(node):
        return node.with_changes(leading_lines=[line for line in node.leading_lines if line.comment is None])

    return replace_node(source, scope, _statement_matcher(matcher), make)


def remove_unused_import(source, name):
    """Delete the module's `import name` once nothing else reads `name` (an edit took its last use);
    while anything still does, the source comes back unchanged. A statement after it with no blank
    lines of its own takes the import's, so the import block stays apart from the docstring."""
    module = cst.parse_module(source)
    import_line = m.SimpleStatementLine(body=[m.Import(names=[m.ImportAlias(name=m.Name(name), asname=None)])])
    imports = [s for s in module.body if m.matches(s, import_line)]
    if len(imports) != 1:
        raise EditError(f"expected exactly one `import {name}` in the module, found {len(imports)}")
    if any(m.findall(s, m.Name(name)) for s in module.body if s is not imports[0]):
        return source
    body = list(module.body)
    index = body.index(imports[0])
    del body[index]
    if index < len(body) and not body[index].leading_lines:
        body[index] = body[index].with_changes(leading_lines=imports[0].leading_lines)
    return module.with_changes(body=body).code


class _MoveStatement(_Scoped):
    """Cut one statement and paste it before/after another, in the same block."""

    def __init__(self, scope, what, anchor, after):
        super().__init__(scope)
        self.what, self.anchor, self.after, self.count = what, anchor, after, 0

    def _move_in(self, body):
        statements = list(body)
        moving = [s for s in statements if m.matches(s, self.what)]
        anchors = [s for s in statements if m.matches(s, self.anchor)]
        if len(moving) != 1 or len(anchors) != 1:
            return body
        statements.remove(moving[0])
        index = statements.index(anchors[0]) + (1 if self.after else 0)
        statements.insert(index, moving[0])
        self.count += 1
        return statements

    def leave_IndentedBlock(self, original, updated):
        if self.in_scope():
            return updated.with_changes(body=self._move_in(updated.body))
        return updated


def move_statement(source, scope, what, before=None, after=None):
    """Move the statement containing `what` to just before/after the one containing the anchor
    (both in the same block)."""
    if (before is None) == (after is None):
        raise ValueError("give exactly one of before= and after=")
    anchor = _statement_matcher(before if after is None else after)
    return _transform(source, _MoveStatement(scope, _statement_matcher(what), anchor, after is not None))


def insert_statement(source, scope, code, before=None, after=None):
    """Insert the statement `code` just before/after the one containing the anchor."""
    if (before is None) == (after is None):
        raise ValueError("give exactly one of before= and after=")
    anchor = _statement_matcher(before if after is None else after)
    new = parse_statement(code)

    class _Insert(_Scoped):
        def __init__(self):
            super().__init__(scope)
            self.count = 0

        def on_leave(self, original, updated):
            if self.in_scope() and m.matches(original, anchor):
                self.count += 1
                return cst.FlattenSentinel([new, updated] if after is None else [updated, new])
            return super().on_leave(original, updated)

    return _transform(source, _Insert())
