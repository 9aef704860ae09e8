"""Choosing bugs and variants: by id, or at random within filters, reproducibly from a seed."""

import random

from bug_catalog.catalog import get_bug, load_catalog, load_records


def matching(category=None, priority=None, difficulty=None, records_only=False):
    """The records that pass every filter given; `category` is one category or a tuple of them.
    records_only: from the records alone, without loading the edits and checks (a listing)."""
    categories = (category,) if isinstance(category, str) else category
    return [r for r in (load_records() if records_only else load_catalog()).values()
            if (categories is None or r.category in categories)
            and (priority is None or r.priority == priority)
            and (difficulty is None or r.difficulty == difficulty)]


def choose(bug, variant=None, seed=None, **filters):
    """(record, variant) for `bug` (an id, slug or "random"); the variant by 1-based number, or
    drawn with the seed so that practising twice need not show the same diff."""
    rng = random.Random(seed)
    if bug == "random":
        candidates = matching(**filters)
        if not candidates:
            raise ValueError("no bug in the catalogue matches those filters")
        record = rng.choice(sorted(candidates, key=lambda r: r.id))
    else:
        record = get_bug(bug)
    if variant is None:
        return record, rng.choice(record.variants)
    if not 1 <= variant <= len(record.variants):
        raise ValueError(f"bug {record.id} has variants 1 to {len(record.variants)}, not {variant}")
    return record, record.variants[variant - 1]
