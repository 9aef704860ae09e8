"""Training runs and their telemetry: run_training (with progress), list_runs, get_view, get_plot.

run_training opens a production-debugging interview: its incident summary says what was
observed against the pristine baseline, never why. Each view is one answer to one request
("show me the gradient norms"); get_plot draws the same curve beside the baseline as a PNG."""

from typing import Annotated, Literal

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, Image
from pydantic import BaseModel, Field

from sandbox.runner import RunError
from sandbox.scenarios import SCENARIOS
from sandbox.shown_paths import for_candidate, training_places, workspace_places
from sandbox.training import load_training
from sandbox.views import PLOTTED, VIEWS
from server.context import add_tool
from server.progress_notes import ProgressNotes
from server.runs import Runs
from server.tools.common import InterviewIdParam

ScenarioName = Literal[tuple(SCENARIOS)]
ViewName = Literal[tuple(VIEWS)]
PlotName = Literal[tuple(sorted(PLOTTED))]
RunIdParam = Annotated[str, Field(min_length=1, max_length=64, description="a run id from run_training or list_runs")]
Flag = Annotated[str, Field(max_length=200, pattern=r"^--[a-z_][a-z_-]*=[^\s]*$")]


class RunReport(BaseModel):
    run_id: str
    state: str = Field(description="finished, failed, timed_out, memory_limit, ...")
    message: str
    commands: list[str] = Field(description="what ran, stage by stage")
    wall_s: float
    symptoms: list[str] = Field(description="symptom classes observed against the pristine baseline")
    summary: str = Field(description="what was observed, in an engineer's words: the incident to open with")
    views: list[str] = Field(description="views that get_view can show for this run")


class RunEntry(BaseModel):
    run_id: str
    state: str
    scenario: str
    steps: int | None
    args: list[str]
    summary: str


class RunList(BaseModel):
    runs: list[RunEntry]


class ViewText(BaseModel):
    run_id: str
    view: str
    text: str


def register(server, ctx):
    runs = Runs(ctx.interviews)

    async def run_training(
        context: Context,
        interview_id: InterviewIdParam = None,
        scenario: Annotated[ScenarioName | None, Field(description=(
            "which run: " + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())
            + ". Default: the run this interview's incident comes from"))] = None,
        steps: Annotated[int | None, Field(ge=1, le=2000, description="optimizer steps")] = None,
        args: Annotated[list[Flag] | None, Field(max_length=20, description=(
            "extra flags for the training script, e.g. ['--lr=1e-3', '--grad_clip=0']: the scripts' own flags, "
            "each within a range; a path (--checkpoint_dir) is relative to the workspace; the number of steps is "
            "`steps` and the seed `seed`, and a run resumes only in the resume scenario. On another codebase: the "
            "flags its training script takes that the codebase accepts (a refused flag's error lists them)"))] = None,
        seed: Annotated[int | None, Field(ge=0, le=2**31 - 1)] = None,
    ) -> RunReport:
        """Train the workspace's code (under time and memory limits, with telemetry) and compare with the
        pristine code's run of the same request. Reports progress; returns the run id and what was seen.
        Each run starts from an empty data directory of its own (whatever data, tokenizer or checkpoint
        it needs, it makes); paths in its output show that directory as the environment variable the
        code reads it from ($NAME)."""
        interview_id = ctx.interview_id(interview_id)
        notes = progress_notes(context)

        def work():
            try:
                done = runs.run(interview_id, scenario, steps, args, seed, notes)
                notes.finish(f"training: {done[0].state}")
                return done
            finally:
                notes.flush()

        training, incident, commands = await anyio.to_thread.run_sync(work)
        places = training_places(training)
        return RunReport(run_id=training.id, state=training.state, message=for_candidate(training.message, places),
                         commands=commands, wall_s=round(training.wall_s, 1), symptoms=incident.classes,
                         summary=for_candidate(incident.summary, places), views=list(VIEWS))

    add_tool(server, run_training, RunReport)

    def list_runs(interview_id: InterviewIdParam = None) -> RunList:
        """The interview's training runs, oldest first, with their incident summaries."""
        interview_id = ctx.interview_id(interview_id)
        workspace = ctx.interviews.get(interview_id).workspace
        entries = [RunEntry(run_id=p["training"], state=p["state"], scenario=p["request"]["scenario"],
                            steps=p["request"]["steps"], args=p["request"]["args"],
                            summary=for_candidate(p["summary"], places_of(p["training"], workspace)))
                   for p in runs.list(interview_id)]
        return RunList(runs=entries)

    add_tool(server, list_runs, RunList)

    def get_view(
        run_id: RunIdParam,
        view: Annotated[ViewName, Field(description="; ".join(f"{k}: {v}" for k, v in VIEWS.items()))],
        interview_id: InterviewIdParam = None,
        every: Annotated[int | None, Field(ge=1, le=10_000, description=(
            "show every k-th step (log, grad_norms, memory, throughput)")) ] = None,
        tail: Annotated[int | None, Field(ge=1, le=2000, description=(
            "stdout and stderr: how many of the last lines to show (default 40)"))] = None,
        grep: Annotated[str | None, Field(min_length=1, max_length=200, description=(
            "stdout and stderr: only the lines that contain this text (plain text, case-insensitive)"))] = None,
    ) -> ViewText:
        """One diagnostic view of a run, as compact text. Aggregate curves (log, grad_norms' global norm,
        eval, memory, throughput) come beside the pristine baseline of the same seed, stage by stage;
        per-layer views (grad_norms' per-parameter table, attention, activations) show this run alone,
        with no baseline, by design; stdout and stderr show the script's own output."""
        shown = runs.view(ctx.interview_id(interview_id), run_id, view, every=every, tail=tail, grep=grep)
        return ViewText(run_id=run_id, view=view, text=shown.text)

    add_tool(server, get_view, ViewText)

    async def get_plot(
        run_id: RunIdParam,
        view: Annotated[PlotName, Field(description="the curve to draw")],
        interview_id: InterviewIdParam = None,
    ) -> Image:
        """A view's curve as a PNG, the run beside the pristine baseline (per-layer views: the run alone)."""
        interview_id = ctx.interview_id(interview_id)
        shown = await anyio.to_thread.run_sync(lambda: runs.view(interview_id, run_id, view, image=True))
        return Image(data=shown.png, format="png")

    add_plot_tool(server, get_plot)


def progress_notes(context):
    """The tool call's progress reports, as throttled notifications to its client (server/progress_notes.py)."""
    return ProgressNotes(lambda done, total, message: anyio.from_thread.run(
        context.report_progress, done, total, message))


def places_of(training_id, workspace):
    """The paths to rewrite in what a run's record says (sandbox/shown_paths.py)."""
    try:
        return training_places(load_training(training_id))
    except RunError:  # its files are gone: the workspace and the state directory are still hidden
        return workspace_places(workspace)


def add_plot_tool(server, fn):
    """An image result has no structured form, so this tool bypasses add_tool's result model but
    keeps its translation of anticipated failures into ToolError."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    from server.context import ANTICIPATED

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except ANTICIPATED as error:
            raise ToolError(str(error)) from None

    server.add_tool(wrapper, name=fn.__name__, description=fn.__doc__, structured_output=False)
