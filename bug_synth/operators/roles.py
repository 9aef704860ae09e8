"""Names of the same kind for different data (train_loader and val_loader, q and k, x1 and x2):
what variable-swap and argument-swap treat as easy to mix up."""

import re

# words that name the same role for different data: two names that differ only in these are one kind
ROLE_GROUPS = (
    {"train", "val", "valid", "validation", "test", "eval"}, {"q", "k", "v"}, {"query", "key", "value"},
    {"logits", "probs", "log_probs", "scores"}, {"inputs", "targets", "labels"}, {"input", "target", "label"},
    {"cos", "sin"}, {"mean", "std"}, {"min", "max"}, {"start", "end"}, {"src", "tgt"}, {"prev", "next"},
    {"first", "last"}, {"x", "y"}, {"pos", "neg"}, {"old", "new"}, {"left", "right"}, {"in", "out"},
    {"real", "fake"}, {"pred", "true"},
)
# single tokens too common to pair on their own (x <-> y everywhere)
LONE_EXCLUDED = frozenset({"x", "y", "in", "out", "pos", "first", "last", "true", "start", "end", "min", "max"})
ROLE_OF = {word: index for index, group in enumerate(ROLE_GROUPS) for word in group}


def _same_role(a, b):
    return a in ROLE_OF and ROLE_OF.get(a) == ROLE_OF.get(b)


def similar(a, b):
    """Whether two names are the same kind of thing for different data: equal but for one token
    that is a role word (train_x/test_x, c_q/c_k, total_train/total_val) or a number (x1/x2)."""
    if a == b:
        return False
    ta, tb = re.split(r"_", a), re.split(r"_", b)
    if len(ta) != len(tb):
        return _digits_differ(a, b)
    differing = [(x, y) for x, y in zip(ta, tb) if x != y]
    if len(differing) != 1:
        return False
    x, y = differing[0]
    if len(ta) == 1 and (x in LONE_EXCLUDED or y in LONE_EXCLUDED):
        return False
    return _same_role(x, y) or (x.isdigit() and y.isdigit()) or _digits_differ(x, y)


def _digits_differ(a, b):
    """x1 and x2, y_1 and y_2: one stem, different numbers."""
    pa, pb = re.fullmatch(r"(\D*?)_?(\d+)", a), re.fullmatch(r"(\D*?)_?(\d+)", b)
    return bool(pa and pb and pa.group(1) == pb.group(1) and pa.group(1))
