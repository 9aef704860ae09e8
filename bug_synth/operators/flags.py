"""Boolean flags flipped: shuffle=, is_causal=, drop_last=, bias=, keepdim=, training=... as call
keywords or parameter defaults; a computed flag (shuffle=train) turned constant False."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.source import Site

# flags whose computed value is worth turning off (shuffle=train -> shuffle=False)
KNOWN_FLAGS = frozenset({"shuffle", "drop_last", "is_causal", "random_crop", "train", "training", "keepdim", "bias",
                         "enabled", "pin_memory", "persistent", "causal", "inplace", "set_to_none", "non_blocking"})
TERMS = {"shuffle": ("shuffl",), "is_causal": ("causal",), "causal": ("causal",),
         "drop_last": ("drop_last", "drop last", "last batch", "partial batch", "incomplete batch"),
         "keepdim": ("keepdim", "keep dim", "keep_dim"), "training": ("training", "dropout"),
         "random_crop": ("crop", "augment"), "train": ("train",), "enabled": ("enabled", "disabled"),
         "set_to_none": ("set_to_none", "none")}
STATE_TERMS = ("true", "false", "flag", "disabl", "enabl", "turned", " off", " on", "not ", "never", "without",
               "wrong", "instead")


def _flag_terms(name):
    return (TERMS.get(name, (name.lower(),)), STATE_TERMS)


@family
class FlagFlipped(Family):
    name = "flag-flipped"
    theme = "flags"
    description = "a True/False keyword or default flipped (shuffle=, is_causal=, drop_last=, bias=...)"

    def sites(self, source):
        for node in source.nodes(cst.Arg, cst.Param):
            name = node.keyword if isinstance(node, cst.Arg) else node.name
            value = node.value if isinstance(node, cst.Arg) else node.default
            if name is None or value is None:
                continue
            flag = name.value
            if isinstance(value, cst.Name) and value.value in ("True", "False"):
                choices = ["False" if value.value == "True" else "True"]
            elif isinstance(node, cst.Arg) and flag in KNOWN_FLAGS and not isinstance(value, (
                    cst.SimpleString, cst.Integer, cst.Float)):
                choices = ["False", "True"]  # shuffle=train: never, or always
            else:
                continue
            for new in choices:
                yield Site(
                    value, cst.Name(new),
                    f"{flag}={new} where {flag}={source.code(value)} is meant {source.where(node)}",
                    _flag_terms(flag))
