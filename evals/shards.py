"""Splitting an eval over machines: `i/n` takes every n-th episode starting at the i-th
(1 <= i <= n), so shards are disjoint, cover the plan, and hold mixed bugs."""

import re

SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec):
    """(i, n) from "i/n"; ValueError with what is wrong otherwise."""
    match = SHARD.match(str(spec))
    if not match:
        raise ValueError(f"a shard is written i/n (for example 2/8), not {spec!r}")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise ValueError(f"shard {spec}: i must be between 1 and n")
    return index, count


def select_shard(episodes, spec):
    """The episodes of one shard (all of them when spec is None)."""
    if spec is None:
        return list(episodes)
    index, count = parse_shard(spec)
    return [e for e in episodes if (e.number - 1) % count == index - 1]
