"""bugdrill's Inspect AI task. Parameters are given with `-T name=value`:

    inspect eval bugdrill/ml_debugging --model openai/gpt-5 -T bugs=1,4,13 -T bugs_per_episode=[0,1,2]
"""

from inspect_ai import task

from evals.task import build_task
from server.interviews import DEFAULT_DIAGNOSES_PER_BUG


@task
def ml_debugging(bugs: str | list | None = None, category: str | None = None, priority: int | None = None,
                 difficulty: str | None = None, kind: str = "production_debugging", episodes_per_bug: int = 1,
                 bugs_per_episode: int | list = 1, seed: int = 0, split: str = "held_out",
                 time_limit: float = 20, agent: str = "react", shard: str | None = None,
                 codebase: str = "builtin",
                 diagnoses_per_bug: int = DEFAULT_DIAGNOSES_PER_BUG, source: str = "catalogue",
                 synth_bugs: int = 10):
    """Blind ML-debugging episodes on picochat (or a nanochat checkout): each sample is a fresh workspace holding no bug (a
    control), one, or two (compound), and the agent's candidate-role MCP tools.

    Args:
        bugs: bug ids or slugs (a list, or one string separated by commas); default: the catalogue.
        category: only bugs of this category.
        priority: only bugs of this priority (1-3).
        difficulty: only bugs of this difficulty (easy, medium, hard).
        kind: production_debugging (start from a run's symptoms) or code_review (a snippet, no logs).
        episodes_per_bug: episodes drawn per bug (each with its own seed and variant).
        bugs_per_episode: 0 (controls, one per five bug episodes), 1, 2 (compound), or a list of them.
        seed: the plan's seed: which variants, partners and episode seeds are drawn.
        split: held_out (default: variants never published as patches), public, or all.
        time_limit: minutes per episode.
        agent: react (the model under test with the MCP tools) or reference (the rule-book agent, no model).
        shard: i/n: run only every n-th episode starting at the i-th, for splitting over machines.
        codebase: builtin (picochat) or the absolute path of a nanochat checkout (only the bugs
            that apply to it are drawn; `bugdrill doctor --codebase PATH` lists them).
        diagnoses_per_bug: the agent's diagnosis budget per injected bug (a control: one bug's
            worth); past it submit_diagnosis refuses, and each wrong claim costs credit.
        source: catalogue (default), or synth: episodes on synthesized bugs drawn from the
            codebase's pool (`bugdrill synth` builds it); bugs, category and priority are then refused.
        synth_bugs: with source=synth, how many synthesized bugs are drawn (one episode each).
    """
    return build_task(bugs, category, priority, difficulty, kind, episodes_per_bug, bugs_per_episode, seed, split,
                      time_limit, agent, shard, codebase=codebase, diagnoses_per_bug=diagnoses_per_bug,
                      source=source, synth_bugs=synth_bugs)
