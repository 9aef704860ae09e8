"""Fills swapped: a tensor built or filled with the sibling of what was meant: torch.zeros <->
torch.ones (zeros_like, new_zeros and nn.init.zeros_ too), torch.tril <-> torch.triu, torch.randn
<-> torch.rand, x.zero_() / x.fill_(0) <-> x.fill_(1).

torch.empty -> torch.zeros is no bug (the values are written before they are read), and
torch.full and torch.arange say what they hold in their arguments: those stay. So do buffers
written before they are read, whatever they start as: a preallocated key/value cache, and the
padding past the real rows of a stacked tensor (x[n:].zero_())."""

import re
from dataclasses import dataclass

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.reports import reports_only
from bug_synth.operators.shapes import callee_name, dotted, int_value, is_method_call, number, positional
from bug_synth.operators.source import Site

# what owns a constructor called as a function: torch.zeros(...), np.tril(...), nn.init.zeros_(w)
OWNERS = frozenset({"torch", "np", "numpy", "torch.random", "np.random", "numpy.random"})
INIT_OWNERS = frozenset({"init", "nn.init", "torch.nn.init"})


@dataclass(frozen=True)
class Fill:
    """What a tensor made by one call holds, and the words a diagnosis uses for it."""
    holds: str
    words: tuple


ZEROS = Fill("zeros", ("zero", "0s", "0.0"))
ONES = Fill("ones", ("ones", "one", "1s", "1.0"))
LOWER = Fill("the lower triangle (each position with the ones before it)", ("lower", "tril", "past", "causal"))
UPPER = Fill("the upper triangle (each position with the ones after it)", ("upper", "triu", "future", "anti-causal"))
NORMAL = Fill("standard normal draws (mean 0, both signs)", ("normal", "randn", "gaussian", "mean 0", "zero mean"))
UNIFORM = Fill("uniform draws in [0, 1) (mean 0.5, all positive)", ("uniform", "rand(", "positive", "0.5", "[0, 1)"))

# callee -> (its sibling, what it holds, what the sibling holds)
SWAPS = {
    "zeros": ("ones", ZEROS, ONES), "ones": ("zeros", ONES, ZEROS),
    "zeros_like": ("ones_like", ZEROS, ONES), "ones_like": ("zeros_like", ONES, ZEROS),
    "new_zeros": ("new_ones", ZEROS, ONES), "new_ones": ("new_zeros", ONES, ZEROS),
    "zeros_": ("ones_", ZEROS, ONES), "ones_": ("zeros_", ONES, ZEROS),
    "tril": ("triu", LOWER, UPPER), "triu": ("tril", UPPER, LOWER),
    "tril_": ("triu_", LOWER, UPPER), "triu_": ("tril_", UPPER, LOWER),
    "randn": ("rand", NORMAL, UNIFORM), "rand": ("randn", UNIFORM, NORMAL),
    "randn_like": ("rand_like", NORMAL, UNIFORM), "rand_like": ("randn_like", UNIFORM, NORMAL),
}
METHODS = frozenset({"new_zeros", "new_ones", "tril", "triu", "tril_", "triu_"})
INITS = frozenset({"zeros_", "ones_"})
SHOWN_LIMIT = 50
CACHE_NAME = re.compile(r"(?:k|v|kv|keys?|values?)(?:_?cache)?|cache")


def _swap(call):
    """(the new call, what the old one holds, what the new one holds), or None."""
    name = callee_name(call)
    owner = dotted(call.func.value) if isinstance(call.func, cst.Attribute) else ""
    if name in SWAPS and (owner in (INIT_OWNERS if name in INITS else OWNERS)
                          or (name in METHODS and is_method_call(call))):
        sibling, old, new = SWAPS[name]
        return call.with_changes(func=call.func.with_changes(attr=cst.Name(sibling))), old, new
    if not is_method_call(call):
        return None
    if name == "zero_" and not call.args:
        return call.with_changes(func=call.func.with_changes(attr=cst.Name("fill_")), args=[cst.Arg(number(1))]), \
            ZEROS, ONES
    args = positional(call)
    if name == "fill_" and len(call.args) == 1 and len(args) == 1 and int_value(args[0].value) in (0, 1):
        value = int_value(args[0].value)
        return call.with_changes(args=[args[0].with_changes(value=number(1 - value))]), \
            (ZEROS, ONES)[value], (ONES, ZEROS)[value]
    return None


@family
class FillSwapped(Family):
    name = "fill-swapped"
    theme = "fills"
    description = "a tensor built or filled with its sibling: zeros <-> ones, tril <-> triu, randn <-> rand"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            found = _swap(call)
            if found is None or reports_only(source, call) or self._written_first(source, call):
                continue
            new, old, holds = found
            yield Site(
                call, new,
                f"{self._shown(source, new)} is used where {self._shown(source, call)} is meant "
                f"{source.where(call)}: the tensor holds {holds.holds} instead of {old.holds}",
                (holds.words, old.words + ("instead", "wrong", "should", "swap")))

    @staticmethod
    def _written_first(source, call):
        """A key/value cache allocated (self.k_cache = torch.zeros(...)), or padding zeroed (x[n:].zero_())."""
        parent = source.parent(call)
        if isinstance(parent, cst.Assign) and all(
                CACHE_NAME.fullmatch(dotted(t.target).rsplit(".", 1)[-1].lower()) for t in parent.targets):
            return True
        receiver = call.func.value if isinstance(call.func, cst.Attribute) else None
        return (callee_name(call) in ("zero_", "fill_") and isinstance(receiver, cst.Subscript)
                and len(receiver.slice) == 1 and isinstance(receiver.slice[0].slice, cst.Slice)
                and receiver.slice[0].slice.upper is None)

    @staticmethod
    def _shown(source, call):
        """The call as written when short; else f(...), or g(...).f(...) for a method of a call's result."""
        shown = source.code(call)
        if len(shown) <= SHOWN_LIMIT:
            return shown
        receiver = call.func.value if isinstance(call.func, cst.Attribute) else None
        if isinstance(receiver, cst.Call) and dotted(receiver.func):
            return f"{dotted(receiver.func)}(...).{callee_name(call)}(...)"
        return f"{source.code(call.func)}(...)"
