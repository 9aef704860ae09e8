"""Small questions about libcst nodes that several families ask (what a call calls, which number a
literal holds), and the few nodes they build."""

import re

import libcst as cst

# receivers whose functions take the tensor first (torch.softmax(x, dim)), unlike tensor methods
MODULE_RECEIVERS = frozenset({"torch", "F", "nn.functional", "torch.nn.functional", "np", "numpy", "math"})
# functional losses, their input first and their target second
LOSS_FUNCTIONS = frozenset({"cross_entropy", "mse_loss", "nll_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                            "kl_div", "binary_cross_entropy", "binary_cross_entropy_with_logits"})
# names that say nothing about what a diagnosis should mention
DULL_NAMES = frozenset({"self", "torch", "F", "nn", "np", "math", "args", "config", "cfg", "cls", "dist"})


def callee_name(call):
    """The last name of what a call calls: "softmax" for F.softmax(...), "" for (f or g)(...)."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return ""


def dotted(node):
    """"self.norm_1" for an Attribute chain of Names, the name for a Name, "" otherwise."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr.value}" if head else ""
    return ""


def receiver_name(call):
    """"optimizer" for optimizer.zero_grad(), "" when the callee is not an attribute of a name."""
    if isinstance(call.func, cst.Attribute):
        return dotted(call.func.value)
    return ""


def is_method_call(call):
    """x.mean() rather than torch.mean(x): the tensor is the receiver, not the first argument."""
    return isinstance(call.func, cst.Attribute) and receiver_name(call) not in MODULE_RECEIVERS


def keyword(call, name):
    """The keyword argument `name=` of a call, or None."""
    return next((arg for arg in call.args if arg.keyword is not None and arg.keyword.value == name), None)


def positional(call):
    return [arg for arg in call.args if arg.keyword is None and not arg.star]


def int_value(node):
    """The int a literal holds (-1 included), or None."""
    if isinstance(node, cst.Integer):
        return int(node.value, 0)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = int_value(node.expression)
        return None if inner is None else -inner
    return None


def float_value(node):
    """The number a Float or Integer literal holds (signed), or None."""
    if isinstance(node, (cst.Float, cst.Integer)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = float_value(node.expression)
        return None if inner is None else -inner
    return None


def number(value):
    """A literal for an int or float (a negative one as unary minus)."""
    if value < 0:
        return cst.UnaryOperation(cst.Minus(), number(-value))
    if isinstance(value, int):
        return cst.Integer(str(value))
    text = f"{value:g}"
    if not re.search(r"[.e]", text):
        text += ".0"
    return cst.Float(text)


def bracket(node):
    """The node in brackets unless it is an atom or has them already (for ~node, node.attr, -node)."""
    if node.lpar or isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float,
                                      cst.SimpleString, cst.Tuple, cst.List)):
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def binds_torch(text):
    """Whether a file's own `import torch` binds the name torch (for code a family adds that names it;
    `import torch.nn.functional as F` binds only F)."""
    return re.search(r"^import torch\s*(#.*)?$", text, re.MULTILINE) is not None


def expr(code):
    return cst.parse_expression(code)


def plus(node, amount):
    """node + amount (node - |amount| for a negative one); brackets only where node needs them
    (a + b - 1 is (a + b) - 1 already)."""
    additive = isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract))
    left = node if additive else bracket(node)
    operator = cst.Add() if amount > 0 else cst.Subtract()
    return cst.BinaryOperation(left=left, operator=operator, right=cst.Integer(str(abs(amount))))


def is_plus_minus_one(node):
    """`e + 1` or `e - 1`."""
    return (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract))
            and int_value(node.right) == 1)


def names_in(node, limit=4):
    """The identifiers a diagnosis of this node would mention (lowercase, at most `limit`): names
    and attribute names, without self/torch/args and the like."""
    found = []

    def add(name):
        if name not in DULL_NAMES and len(name) > 1 and name.lower() not in found:
            found.append(name.lower())

    def walk(n):
        if isinstance(n, cst.Name):
            add(n.value)
        elif isinstance(n, cst.Attribute):
            walk(n.value)
            add(n.attr.value)
        elif isinstance(n, (cst.SimpleString, cst.FormattedString)):
            return
        else:
            for child in n.children:
                walk(child)

    walk(node)
    return tuple(found[:limit])


def name_terms(name):
    """Ways a diagnosis writes a variable's name: the name, or for one- and two-letter names the
    name set off by spaces, backticks or brackets (a bare "q" is inside every word)."""
    name = name.lower()
    if len(name) > 2:
        return (name,)
    return (f" {name} ", f"`{name}`", f"({name}", f" {name},", f" {name})", f" {name}.", f"'{name}'", f"{name}=")
