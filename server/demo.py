"""`bugdrill demo`: a short production-debugging interview, played end to end over MCP.

It starts `bugdrill serve` as a subprocess, connects a real MCP client over stdio, and plays
both sides: the interviewer (start, run, the incident, the views asked for, reveal, progress)
and a scripted candidate (asks for two views, then fixes and verifies). The scripted candidate
does not debug: it takes the fix from the answer key, and the transcript says so — the point is
to show every step of the flow, not to solve the bug.
"""

import os
import random
import re
import sys
import tempfile
import textwrap
import time

import anyio
from mcp import Client, StdioServerParameters

from sandbox.workspace import load_answer_key
from server.progress_display import RunProgress

# (bug, variant) pairs whose default run shows its symptom clearly within 100 steps of `tiny`
DEMO_BUGS = [(1, 2), (54, 1), (5, 1), (38, 1)]
WIDTH = 100


def say(who, text=""):
    print(f"\n{who}: {text}" if text else f"\n{who}:")


def show(text, limit=40):
    lines = text.splitlines()
    for line in lines[:limit]:
        print("    " + line)
    if len(lines) > limit:
        print(f"    ... ({len(lines) - limit} more lines)")


def wrap(text):
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent="    ", subsequent_indent="    ")


def by_status(counts):
    """{"not_started": 51, "attempted": 0, ..., "fixed": 1} as "51 not started, 1 fixed": the server's
    order, statuses with no bug left out."""
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items() if n)


async def call(client, tool, **arguments):
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def play(state_dir, bug, variant, seed, drawn):
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(state_dir),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve"], env=env)
    async with Client(server) as client:
        tools = await client.list_tools()
        print(f"connected to `bugdrill serve` over stdio: {len(tools.tools)} tools")

        say("interviewer", "start_interview(kind='production_debugging', bug=<drawn>, seed=%d)" % seed)
        started = await call(client, "start_interview", kind="production_debugging", bug=str(bug), variant=variant,
                             seed=seed)
        interview = started["interview_id"]
        print(f"    interview {interview}; blind workspace {started['workspace']}; {started['clock']['note']}")

        say("interviewer", "run_training()  (the run the incident comes from, and its pristine baseline)")

        with RunProgress() as progress:
            async def on_progress(done, total, message):
                progress.update(done, total, message)

            result = await client.call_tool("run_training", {"interview_id": interview}, progress_callback=on_progress)
        if result.is_error:
            raise RuntimeError(result.content[0].text)
        run = result.structured_content
        print(f"    run {run['run_id']}: {run['state']} in {run['wall_s']} s; ran: {run['commands'][-1]}")
        training_seed = re.search(r"--seed=(\d+)", run["commands"][-1])
        if training_seed:
            drew = "the bug and its variant" if drawn else "the variant"
            print(wrap(f"(--seed={training_seed.group(1)} is the training seed, the pristine baseline's too; "
                       f"the demo's seed {seed} drew {drew})"))
        say("interviewer", "Here is the incident.")
        print(wrap(run["summary"]))

        say("candidate", "Can I see the loss and the learning rate, every 10 steps?")
        log = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="log", every=10)
        show(log["text"], 30)
        say("candidate", "And the gradient norms?")
        grads = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="grad_norms",
                           every=10)
        show(grads["text"], 30)

        key = load_answer_key(started["workspace"])
        fix = key["bugs"][0]
        say("candidate", f"(scripted: takes the fix from the answer key, to show the rest of the flow) "
                         f"diagnosis and fix in {fix['file']}")
        line = next(int(h.split("+")[1].split(",")[0]) for h in fix["diff"].splitlines() if h.startswith("@@"))
        graded = await call(client, "submit_diagnosis", interview_id=interview, file=fix["file"], line=line + 3,
                            what_is_wrong="the change in this region of the code is what breaks training")
        print(f"    graded: location {'right' if graded['location_right'] else 'wrong'}, cause "
              f"{'right' if graded['cause_right'] else 'wrong'} (a vague cause is not credited); score {graded['score']}")
        edited = await call(client, "edit_file", interview_id=interview, path=fix["file"], content=fix["pristine"])
        print("    the edit, as a diff from the bugged file to the fixed one:")
        show(edited.get("diff", ""), 20)

        say("candidate", "verify_fix()")
        verified = await call(client, "verify_fix", interview_id=interview)
        print(f"    {verified['message']}")

        say("interviewer", "reveal()")
        revealed = (await call(client, "reveal", interview_id=interview))["bugs"][0]
        print(f"    bug {revealed['id']}: {revealed['title']} (variant {revealed['variant']}, "
              f"{revealed['category']}, {revealed['difficulty']})")
        print("    the injected change, as a diff from the pristine file to the bugged one (the edit's, reversed):")
        show(revealed["diff"], 20)
        print(wrap(revealed["explanation"]))

        say("interviewer", "end_interview(), get_progress()")
        ended = await call(client, "end_interview", interview_id=interview)
        progress_now = await call(client, "get_progress")
        print(f"    verdict: {ended['verdict']}")
        print(f"    bugs by status: {by_status(progress_now['counts'])}")
        suggestion = progress_now.get("next_bug")
        if suggestion:
            print(wrap(f"next bug to practise: {suggestion['id']} ({suggestion['title']}): {suggestion['why']}"))


def run_demo(bug=None, seed=None, state_dir=None):
    seed = random.randrange(2**31) if seed is None else seed
    drawn = bug is None
    if drawn:
        bug, variant = random.Random(seed).choice(DEMO_BUGS)
    else:
        variant = None
    started = time.time()
    state = state_dir or tempfile.mkdtemp(prefix="bugdrill-demo-state-")
    os.environ["BUGDRILL_STATE_DIR"] = str(state)  # the scripted candidate reads the answer key here
    anyio.run(play, state, bug, variant, seed, drawn)
    print(f"\ndemo finished in {time.time() - started:.0f} s (state in {state})")
    return 0
