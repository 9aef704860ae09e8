"""Call arguments swapped: two adjacent positional arguments of the same kind trade places (q/k,
cos/sin, inputs/targets, train/val data), a loss's input and target trade places, or the two
numbers of a pair such as betas=(0.9, 0.95) do. Arguments of different kinds (a tensor and a seed)
are left alone: swapping them crashes at once and teaches nothing."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.roles import similar
from bug_synth.operators.shapes import LOSS_FUNCTIONS, callee_name, float_value, name_terms
from bug_synth.operators.source import Site

SWAP_TERMS = ("swap", "order", "revers", "each other", "wrong place", "switched", "exchanged", "mixed up",
              "wrong order", "position", "instead of", "backwards")


def subject(node):
    """The variable an argument is about: q for q, c_q for self.c_q, logits for logits.view(-1),
    tokens for tokens[i]; "" for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Subscript):
        return subject(node.value)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return subject(node.func.value)
    return ""


@family
class ArgumentSwap(Family):
    name = "argument-swap"
    theme = "arguments"
    description = "two adjacent positional arguments (variables) trade places; a numeric pair is reversed"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            slots = [k for k, arg in enumerate(call.args) if arg.keyword is None and not arg.star]
            for i, j in zip(slots, slots[1:]):
                left, right = call.args[i].value, call.args[j].value
                a, b = source.code(left), source.code(right)
                x, y = subject(left), subject(right)
                input_and_target = callee_name(call) in LOSS_FUNCTIONS and i == slots[0]
                if a == b or not x or not y or not (similar(x, y) or input_and_target):
                    continue
                new_args = list(call.args)
                new_args[i], new_args[j] = call.args[i].with_changes(value=right), call.args[j].with_changes(value=left)
                yield Site(
                    call, call.with_changes(args=new_args),
                    f"{a} and {b} are passed to {callee_name(call) or 'the call'} in each other's places "
                    f"{source.where(call)}",
                    (name_terms(x) + name_terms(y), SWAP_TERMS))
        for pair in source.nodes(cst.Tuple):
            values = [float_value(element.value) for element in pair.elements]
            parent = source.parent(pair)
            if len(values) != 2 or None in values or values[0] == values[1] or not (
                    isinstance(parent, cst.Arg) and parent.keyword is not None):
                continue
            first, second = pair.elements
            swapped = pair.with_changes(elements=[first.with_changes(value=second.value),
                                                  second.with_changes(value=first.value)])
            keyword = parent.keyword.value
            yield Site(
                pair, swapped,
                f"{keyword} is {source.code(swapped)} instead of {source.code(pair)} {source.where(pair)}: its two "
                f"values are in each other's places",
                (name_terms(keyword.rstrip("s")) + name_terms(keyword), SWAP_TERMS))
