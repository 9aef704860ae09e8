"""Wrong variable of the same kind: a name read where another of the same function and role is
meant (train_loader <-> val_loader, q <-> k, logits <-> probs, x1 <-> x2), or an attribute of the
same object (self.c_q <-> self.c_k, corpus.train_tokens <-> corpus.val_tokens)."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.roles import similar
from bug_synth.operators.shapes import dotted, name_terms
from bug_synth.operators.source import Site


def _first_bindings(source):
    """{function: {name: the first line that binds it}}: parameters at the def line, then every
    assignment, loop, with-as and comprehension target."""
    bindings = {}
    for function in source.nodes(cst.FunctionDef):
        params = function.params
        names = bindings.setdefault(function, {})
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            names.setdefault(param.name.value, source.line(function))
    for name in source.nodes(cst.Name):
        if source.is_store(name):
            names = bindings.setdefault(source.enclosing_function(name), {})
            line = source.line(name)
            if line < names.get(name.value, line + 1):
                names[name.value] = line
    return bindings


def _attributes(source, owner):
    """Attribute names read or written on `owner` ("self", "corpus") anywhere in the file."""
    return {node.attr.value for node in source.nodes(cst.Attribute) if dotted(node.value) == owner}


@family
class VariableSwap(Family):
    name = "variable-swap"
    theme = "names"
    description = "a variable read where another of the same role is meant (train/val, q/k, x1/x2, self.norm_1/2)"

    def sites(self, source):
        bindings, attributes = _first_bindings(source), {}
        for node in source.nodes(cst.Name, cst.Attribute):
            parent = source.parent(node)
            if not source.is_load(node) or isinstance(parent, cst.Attribute) and parent.attr is node:
                continue
            if isinstance(parent, cst.Call) and parent.func is node and dotted(node).split(".")[0] != "self":
                continue  # a method or function called, not a variable read (self.norm_1(x) is a layer)
            if isinstance(node, cst.Name):
                # a name bound only later would be read before it exists: a crash, not a mix-up
                line, bound = source.line(node), bindings.get(source.enclosing_function(node), {})
                pool, old = sorted(name for name, first in bound.items() if first < line), node.value
            else:
                owner = dotted(node.value)
                if not owner:
                    continue
                if owner not in attributes:
                    attributes[owner] = sorted(_attributes(source, owner))
                pool, old = attributes[owner], node.attr.value
            new = next((name for name in pool if similar(old, name)), None)
            if new is None:
                continue
            replacement = cst.Name(new) if isinstance(node, cst.Name) else node.with_changes(attr=cst.Name(new))
            shown_old, shown_new = source.code(node), source.code(replacement)
            yield Site(
                node, replacement,
                f"{shown_new} is used where {shown_old} is meant {source.where(node)}",
                (name_terms(old), name_terms(new)))
