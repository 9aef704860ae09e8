"""bugdrill's eval as an Inspect AI task: one blind episode per sample.

setup (always runs, whatever solver replaces ours): start the episode's interview on a fresh
workspace, outside the state directory, and note its id in the sample's store.
solver: the agent. "react" gives a model the candidate-role MCP server (over stdio, bound to
the episode) as its tools; "reference" runs the rule-book agent of evals/reference_agent.py
through the same tools, so its transcript reads like a model's.
scorer: evals/judge.py's verdict, as Inspect scores with per-sample metadata.
"""

import os
import sys
import tempfile
from pathlib import Path

import anyio
from inspect_ai import Task
from inspect_ai.agent import as_solver, react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageAssistant, execute_tools
from inspect_ai.model._model import sample_model_usage  # not exported; the sample's log records it too
from inspect_ai.scorer import Score, grouped, mean, metric, scorer, stderr
from inspect_ai.solver import solver
from inspect_ai.tool import ToolCall, mcp_connection, mcp_server_stdio, mcp_tools
from inspect_ai.util import LimitExceededError
from inspect_ai.util import time_limit as scoped_time_limit

from bug_catalog.catalog import load_catalog
from bug_catalog.selection import choose
from evals.command_agent import command_agent, require_isolation
from sandbox import jail
from evals.episodes import SOURCES, eval_codebase, plan, plan_synth
from evals.judge import judge
from evals.shards import select_shard
from evals.statement import statement
from sandbox.state import state_dir
from server.interviews import DEFAULT_DIAGNOSES_PER_BUG, Interviews

AGENTS = ("react", "reference", "adversary")
SETUP_SLACK_S = 60
# Inspect gives scoring half the sample's time limit; the judge's checks and short runs need
# minutes on a slow CPU whatever the agent's limit, so the sample's limit is at least twice this
SCORING_S = 15 * 60


def episodes_root():
    """Where episode workspaces live: outside the state directory, so no path an agent sees
    points into it."""
    root = Path(os.environ.get("BUGDRILL_EPISODES_DIR") or Path(tempfile.gettempdir()) / "bugdrill-episodes")
    root.mkdir(parents=True, exist_ok=True)
    return root


def episode_workspace(interview_id):
    return Interviews(workspaces_root=episodes_root()).get(interview_id).workspace


def require_jail():
    """An eval scores workspace code, so that code runs in the jail or the eval does not start;
    BUGDRILL_ISOLATION=auto set by hand lets a developer try an eval on a machine without it,
    under the honour system."""
    os.environ.setdefault("BUGDRILL_ISOLATION", "required")
    try:
        jail.mode()
    except jail.JailError as error:
        raise ValueError(str(error)) from None


def build_task(bugs=None, category=None, priority=None, difficulty=None, kind="production_debugging",
               episodes_per_bug=1, bugs_per_episode=1, seed=0, split="held_out", time_limit=20, agent="react",
               shard=None, agent_command=None, codebase="builtin", diagnoses_per_bug=DEFAULT_DIAGNOSES_PER_BUG,
               source="catalogue", synth_bugs=10):
    """The Task; bad parameters raise ValueError before any episode starts. agent_command: a
    command-line agent run isolated (evals/command_agent.py) instead of `agent`; codebase:
    "builtin" or the absolute path of a checkout a codebase recognises (sandbox/codebases); diagnoses_per_bug: the
    agent's diagnosis budget per injected bug (a control gets one bug's worth); source: "catalogue",
    or "synth" (synth_bugs episodes drawn from the codebase's synthesized-bug pool, bug_synth)."""
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {', '.join(AGENTS)}, not {agent!r}")
    if isinstance(diagnoses_per_bug, bool) or not isinstance(diagnoses_per_bug, int) or diagnoses_per_bug < 1:
        raise ValueError(f"diagnoses_per_bug must be a whole number of at least 1, not {diagnoses_per_bug!r}")
    if not 0 < time_limit <= 24 * 60:
        raise ValueError(f"time_limit is in minutes, more than 0 and at most a day, not {time_limit!r}")
    if agent_command is not None:
        require_isolation()
    require_jail()
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    target = eval_codebase(codebase)
    if source == "synth":
        if bugs or category or priority:
            raise ValueError("source=synth draws from the synthesized-bug pool: bugs, category and priority are "
                             "the catalogue's; give synth_bugs (and difficulty) instead")
        planned = plan_synth(kind, synth_bugs, bugs_per_episode, seed, target.name, difficulty)
    else:
        planned = plan(bugs, category, priority, difficulty, kind, episodes_per_bug, bugs_per_episode, seed, split,
                       target.name)
    episodes = select_shard(planned, shard)
    samples = [_sample(episode, time_limit, target, diagnoses_per_bug) for episode in episodes]
    agent_solver = command_agent(agent_command, time_limit) if agent_command else debugging_agent(agent)
    # the agent has time_limit minutes (a minute more for the MCP server's start); the judge
    # then has its own time, so a short agent limit never cuts the scoring short
    agent_s = int(time_limit * 60) + SETUP_SLACK_S
    return Task(name="ml_debugging", dataset=MemoryDataset(samples, name="bugdrill"), setup=start_episode(),
                solver=within(agent_solver, agent_s), scorer=episode_scorer(),
                time_limit=agent_s + max(agent_s, 2 * SCORING_S))


def _sample(episode, time_limit, target, diagnoses_per_bug):
    catalog = load_catalog()
    records = [catalog[p.bug] if isinstance(p.bug, int) else synthesized(target, p.bug) for p in episode.picks]
    group = {0: "control", 1: None, 2: "compound"}[len(records)]
    return Sample(
        id=f"episode-{episode.number:03d}",
        input=statement(episode.kind, target.codebase),
        metadata={"episode": episode.number, "kind": episode.kind, "seed": episode.seed, "codebase": target.name,
                  "bugs_per_episode": len(records), "bugs": [p.bug for p in episode.picks],
                  "variants": [p.variant_name for p in episode.picks],
                  "picks": [[p.bug, p.variant] for p in episode.picks],
                  "category": group or records[0].category, "difficulty": group or records[0].difficulty,
                  "time_limit_minutes": time_limit, "diagnoses_per_bug": diagnoses_per_bug})


def synthesized(target, bug_id):
    """A pool's bug as the sample's metadata groups it (category "synthesized", its measured difficulty)."""
    from types import SimpleNamespace

    from bug_synth.pool import Pool

    return SimpleNamespace(category="synthesized", difficulty=Pool(target.codebase, target.source).get(bug_id).difficulty)


@solver
def within(agent_solver, seconds):
    """agent_solver, stopped after `seconds`; the episode is then scored as it stands."""
    async def solve(state, generate):
        try:
            with scoped_time_limit(seconds):
                return await agent_solver(state, generate)
        except LimitExceededError:
            state.messages.append(ChatMessageAssistant(
                content=f"[the agent was stopped at its time limit of {seconds} s; the episode is scored as it stands]"))
            return state

    return solve


@solver
def start_episode():
    async def solve(state, generate):
        meta = state.metadata
        interviews = Interviews(workspaces_root=episodes_root())
        chosen = [interviews.synthesized(meta["codebase"], bug, meta["seed"]) if isinstance(bug, str)
                  else choose(str(bug), variant) for bug, variant in meta["picks"]]
        interview = await anyio.to_thread.run_sync(
            lambda: interviews.start_with(meta["kind"], chosen, meta["seed"], meta["codebase"],
                                          time_limit_s=meta["time_limit_minutes"] * 60,
                                          diagnoses_per_bug=meta["diagnoses_per_bug"]))
        state.store.set("interview_id", interview.id)
        return state

    return solve


def candidate_server(interview_id):
    """The candidate-role MCP server bound to one episode, over stdio."""
    return mcp_server_stdio(
        name="bugdrill", command=sys.executable,
        args=["-m", "server.cli", "serve", "--role", "candidate", "--interview", interview_id],
        env={"BUGDRILL_STATE_DIR": str(state_dir()), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


@solver
def debugging_agent(agent="react"):
    async def solve(state, generate):
        tools = mcp_tools(candidate_server(state.store.get("interview_id")))
        if agent == "react":
            return await as_solver(react(tools=[tools]))(state, generate)
        if agent == "adversary":  # issue 15's attacks, not debugging: evals/adversary_agent.py
            from evals.adversary_solver import run_adversary_solver
            return await run_adversary_solver(state, tools)
        return await _run_reference(state, tools)

    return solve


async def _run_reference(state, source):
    from evals.reference_agent import WHOLE_RESULTS, ToolFailed, parse_result, run_reference_agent

    async with mcp_connection([source]):
        tools = await source.tools()
        calls = iter(range(1, 10**6))

        async def call(name, arguments):
            message = ChatMessageAssistant(content="", tool_calls=[
                ToolCall(id=f"call-{next(calls)}", function=name, arguments=arguments)])
            result = await execute_tools([*state.messages, message], tools, max_output=WHOLE_RESULTS)
            state.messages.extend([message, *result.messages])
            reply = result.messages[-1]
            if reply.error is not None:
                raise ToolFailed(reply.error.message)
            return parse_result(name, reply.text)

        answer = await run_reference_agent(call, state.metadata["kind"])
    state.messages.append(ChatMessageAssistant(content=answer))
    state.output.completion = answer
    return state


# Inspect keys a scorer's metrics by registry name, so each grouping is a metric of its own name
@metric
def by_category():
    return grouped(mean(), "category", all=False)


@metric
def by_category_stderr():
    return grouped(stderr(), "category", all=False)


@metric
def by_difficulty():
    return grouped(mean(), "difficulty", all=False)


@metric
def by_difficulty_stderr():
    return grouped(stderr(), "difficulty", all=False)


@scorer(metrics={"solved": [mean(), stderr(), by_category(), by_category_stderr(), by_difficulty(),
                            by_difficulty_stderr()],
                 "credit": [mean(), stderr()]})
def episode_scorer():
    async def score(state, target):
        interviews = Interviews(workspaces_root=episodes_root())
        interview = interviews.get(state.store.get("interview_id"))
        verdict = await anyio.to_thread.run_sync(lambda: judge(interviews, interview))
        summary = interviews.summary(interview)
        if interview.is_open:
            await anyio.to_thread.run_sync(lambda: interviews.end(interview.id))
        usage = sample_model_usage()
        return Score(
            value={"solved": float(verdict.solved), "credit": verdict.credit},
            answer=state.output.completion,
            explanation=_explain(verdict),
            metadata={**verdict.as_dict(), "tool_calls": _tool_calls(state), "runs": summary["runs"],
                      "verify_calls": summary["verifies"], "hints": summary["hints_used"],
                      "edits": summary["edits"], "seconds": interview.clock().elapsed_s,
                      "tokens": sum(u.total_tokens for u in usage.values())})

    return score


def _tool_calls(state):
    return sum(len(m.tool_calls or []) for m in state.messages if isinstance(m, ChatMessageAssistant))


def _explain(verdict):
    if verdict.control:
        if not verdict.false_positive:
            return "control episode: nothing claimed, nothing broken"
        return (f"control episode, false positive: {verdict.diagnoses} diagnoses; "
                f"broken: {'; '.join(verdict.broken) or 'nothing'}")
    parts = [f"bug {b.bug}: place {'yes' if b.place else 'no'}, cause {'yes' if b.place and b.cause else 'no'}, "
             f"fixed {'yes' if b.fixed else 'no'}, clean {'yes' if b.clean else 'no'}" for b in verdict.bugs]
    if verdict.broken and verdict.broken != ["not every bug is fixed"]:
        parts.append("broken: " + "; ".join(verdict.broken))
    return ". ".join(parts)
