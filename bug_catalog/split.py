"""Public and held-out variants: a fixed, seeded split of each bug's variants.

Public variants are the ones exported as patches and described in the docs; held-out variants
are what evals draw by default, so a model trained on our public patches has seen none of the
diffs it is scored on. A bug with one variant keeps it held out (nothing of it is published).
The split depends only on the bug id, the variant names and SPLIT_SEED: adding a bug or a
variant elsewhere never moves another bug's variants across.
"""

import random

SPLIT_SEED = "bugdrill-split-1"
SPLITS = ("held_out", "public", "all")


def held_out_names(record):
    """Names of the record's held-out variants: the larger half, drawn with the bug's own seed."""
    names = sorted(v.name for v in record.variants)
    random.Random(f"{SPLIT_SEED}:{record.id}").shuffle(names)
    return set(names[:(len(names) + 1) // 2])


def variants_in(record, split):
    """[(1-based variant number, variant)] of the record's variants in a split, in catalogue order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    held = held_out_names(record)
    return [(number, variant) for number, variant in enumerate(record.variants, 1)
            if split == "all" or (variant.name in held) == (split == "held_out")]
