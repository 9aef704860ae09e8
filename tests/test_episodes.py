"""Planning eval episodes: the public/held-out split, controls and compound pairs, shards, and
bad task parameters."""

import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.split import held_out_names, variants_in
from evals.episodes import PlanError, plan
from evals.shards import parse_shard, select_shard
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.pairs import compatible


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


def test_the_split_is_disjoint_covers_every_variant_and_holds_out_single_variants():
    for record in load_catalog().values():
        held = variants_in(record, "held_out")
        public = variants_in(record, "public")
        assert {v.name for _, v in held} | {v.name for _, v in public} == {v.name for v in record.variants}
        assert not {v.name for _, v in held} & {v.name for _, v in public}
        assert len(held) >= len(public)
        assert held_out_names(record) == held_out_names(record)  # no state: the same every call
        for number, variant in held + public:
            assert record.variants[number - 1] is variant


def test_a_plan_is_reproducible_and_draws_held_out_variants_by_default():
    first = plan(bugs="1,4,13", seed=5)
    assert first == plan(bugs="1,4,13", seed=5)
    catalog = load_catalog()
    for episode in first:
        (pick,) = episode.picks
        assert pick.variant_name in held_out_names(catalog[pick.bug])
    assert [p.bug for e in first for p in e.picks] == [1, 4, 13]


def test_controls_hold_no_bug_and_compound_episodes_pair_compatible_bugs():
    episodes = plan(bugs=[1, 4, 13], bugs_per_episode=[0, 2], seed=1)
    controls = [e for e in episodes if not e.picks]
    compound = [e for e in episodes if e.picks]
    assert len(controls) == 1 and len(compound) == 3
    catalog = load_catalog()
    for episode in compound:
        first, second = episode.picks
        assert first.bug != second.bug
        picks = [(catalog[p.bug], catalog[p.bug].variants[p.variant - 1]) for p in episode.picks]
        assert compatible(PICOCHAT_DIR, *picks)[0]


def test_two_bugs_in_one_file_never_share_an_episode():
    catalog = load_catalog()
    zero_grad, accumulation = catalog[1], catalog[2]  # every variant of both edits scripts/base_train.py
    verdict = compatible(PICOCHAT_DIR, (zero_grad, zero_grad.variants[0]), (accumulation, accumulation.variants[0]))
    assert verdict == (False, "both edit the same file")
    with pytest.raises(PlanError, match="no bug among those chosen can share an episode with bug 1"):
        plan(bugs="1,2", bugs_per_episode=2)


@pytest.mark.parametrize("arguments, message", [
    ({"bugs": "1,999"}, "999"),
    ({"bugs": "no-such-bug"}, "no-such-bug"),
    ({"bugs_per_episode": 3}, "bugs_per_episode must be 0, 1 or 2"),
    ({"kind": "practice"}, "kind must be one of"),
    ({"episodes_per_bug": 0}, "episodes_per_bug must be at least 1"),
    ({"bugs": "1", "split": "secret"}, "split must be one of"),
    ({"bugs": "1", "codebase": "nanochat"}, "absolute path of a checkout bugdrill recognises"),
    ({"bugs": "1", "codebase": "/tmp"}, "absolute path of a checkout bugdrill recognises"),
])
def test_bad_task_parameters_are_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        plan(**arguments)


def test_shards_are_disjoint_and_cover_the_plan():
    episodes = plan(bugs="1,4,13,20,21", seed=2)
    shards = [select_shard(episodes, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(e.number for s in shards for e in s) == [e.number for e in episodes]
    assert all(shards)
    for bad in ("3/2", "0/2", "1/0", "two/3", "1-2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_the_published_matrix_names_no_held_out_variant():
    from sandbox.matrix import MatrixRow, table

    record = load_catalog()[4]
    rows = [MatrixRow(bug=4, slug=record.slug, variant=v.name, scenario="base", steps=None, expected=[],
                      observed=[], verdict=f"not run: the {v.name} note", steps_run=0, seconds=0.0, summary="")
            for v in record.variants]
    published = table(rows, publish=True)
    for _, variant in variants_in(record, "held_out"):
        assert variant.name not in published
    for _, variant in variants_in(record, "public"):
        assert f"| {variant.name} |" in published and f"the {variant.name} note" in published
    assert all(v.name in table(rows) for v in record.variants)  # the terminal's table names them all
