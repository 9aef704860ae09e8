"""The interviewer's scripts, as MCP prompts, built from the practice guide's two interview types
and its Method 1 ("inject a bug blindly, don't tell me where").

Code review (about 60% of interviews): the interviewer shows 20-30 lines that contain the bug, no
logs; 5-10 minutes. Production debugging (about 40%): the interviewer opens with the incident and
the basic log; the candidate proposes what to check and gets exactly that; 15-20 minutes.
"""

import re

BLIND = ("Never tell the candidate which bug it is, its number, title or category, the file or line, or "
         "what changed, not even indirectly (no 'look closely at the attention', no comments on suspicious code).")

SCORING = """\
Scoring. When the candidate commits to an answer, call submit_diagnosis with their file, line (or function)
and their own words; do not improve their wording. Location and cause are graded separately (half each);
as interviewer you also get the catalogue's explanation. Score the process as well as the answer: did they
start from the evidence, form a hypothesis and test it, explain why the bug breaks training (not only where
it is), and propose the right fix? A fix they make with edit_file is checked by verify_fix (fixed or not
fixed; each call is counted)."""

TIMING = """\
Timing. The limit is {minutes} minutes (interview_status shows elapsed and remaining time). If the candidate
is stuck for several minutes, offer a hint; get_hint gives the next rung of the ladder and is recorded. At the
limit, move on, as a real interview would: say time is up and go to the debrief."""

DEBRIEF = """\
Debrief. end_interview records the verdict. Then reveal shows the bug, the diff and the explanation, and the
investigation a strong candidate would have made: walk through it with the candidate. record_note keeps the
guide's notes for this bug (symptoms observed, key learning); get_progress suggests the next bug to practise."""


def _clean(value):
    """Prompt arguments are free text: keep what a bug id, slug, category or difficulty can contain."""
    return re.sub(r"[^A-Za-z0-9 _()-]", "", str(value or ""))[:64].strip()


def _start(kind, bug, category, difficulty, minutes):
    bug, category, difficulty = _clean(bug), _clean(category), _clean(difficulty)
    args = [f'kind="{kind}"', f'bug="{bug or "random"}"']
    args += [f'category="{category}"'] if category else []
    args += [f'difficulty="{difficulty}"'] if difficulty else []
    args += [f"time_limit_minutes={minutes}"]
    return f"start_interview({', '.join(args)})"


def code_review_script(bug="random", category="", difficulty="", minutes=20):
    return f"""\
You are the interviewer in a mock ML-debugging interview of the code-review type: "Here's the training
code. Find the bug." Pure code reading, no logs; 5 to 10 minutes is typical.

Setup. Call {_start("code_review", bug, category, difficulty, minutes)}. {BLIND}

Open. Call get_snippet and show the candidate exactly the numbered lines it returns, with the file path,
and say: "Here's the training code. Find the bug." Show no logs, runs or diagnostics: this type has none.

During. The candidate reads and thinks aloud. Answer questions about intent (what a function should
return, the shapes involved) but do not point at lines. If they ask for more context, show exactly the
lines asked for (read_file with that range) and nothing more.

{TIMING.format(minutes=minutes)}

{SCORING}

{DEBRIEF}"""


def production_debugging_script(bug="random", category="", difficulty="", minutes=20):
    return f"""\
You are the interviewer in a mock ML-debugging interview of the production-debugging type: the
candidate starts from a symptom and asks for diagnostics; you fetch exactly what they ask for. 15 to 20
minutes.

Setup. Call {_start("production_debugging", bug, category, difficulty, minutes)}. {BLIND}

Open with the incident summary only. Run training (the training tool returns the observed incident
summary) and open the way a colleague would: "Training loss became NaN at step 347. Here are the logs:"
followed by the basic log only (loss values, maybe the learning rate). Nothing else: no grad norms, no
code, no guesses.

Answering requests. The candidate proposes what to check ("I need to see gradient norms"); fetch exactly
that view and nothing more, and give it without interpretation. If a request is vague, ask which view
they mean. Never volunteer the next view or hint at which one would help. If they want code, show the
file or lines asked for (read_file, search_code). A new run happens only when they ask for one.

{TIMING.format(minutes=minutes)}

{SCORING} In this type the investigation weighs most: did they ask for views that tell hypotheses apart,
in a sensible order, and read what the views showed correctly?

{DEBRIEF}"""


def practice_script(bug="random", category="", difficulty="", minutes=20, can_reveal=True):
    end = ("end_interview, then reveal it and debrief: what the bug was, why it showed the symptoms it did. "
           if can_reveal else "end_interview (this server has no reveal: the answer stays hidden). ")
    return f"""\
I want to practise ML debugging the practice guide's way (Method 1): inject a bug blindly and don't tell
me where.

1. Call {_start("practice", bug, category, difficulty, minutes)}. Tell me only the workspace path and that a
   bug is in it. {BLIND.replace("the candidate", "me")}
2. While I debug, do what I ask (run a short training of 50-100 steps, show a view, read or search
   code) and nothing more. Give a hint (get_hint) only when I ask for one.
3. When I say I found it, submit_diagnosis with my file, line and words; if I fixed it, verify_fix.
4. When I say "done, next bug": {end}Then record_note with the symptoms I observed, my time to find it
   and my key learning, and start the next bug (get_progress suggests one).

The guide's rules for me: run short, document symptoms before reading code, form a hypothesis about the
category first, don't look at git diff, and understand why it breaks, not only how to fix it. Real
interviews move on after {minutes} minutes."""


def register(server, ctx):
    def minutes(value):
        return int(value) if str(value).isdigit() and 1 <= int(value) <= 240 else 20

    @server.prompt(title="Practise alone: inject a bug blindly")
    def self_practice(bug: str = "random", category: str = "", difficulty: str = "", time_limit: str = "20") -> str:
        """The practice guide's Method 1: inject a bug blindly, don't tell me where; debug; hints on request."""
        return practice_script(bug, category, difficulty, minutes(time_limit), can_reveal=ctx.interviewer)

    if not ctx.interviewer:
        return

    @server.prompt(title="Interviewer script: code review")
    def code_review_interview(bug: str = "random", category: str = "", difficulty: str = "",
                              time_limit: str = "20") -> str:
        """Run a code-review interview: show the 20-30 line snippet, no logs, score location, cause and process."""
        return code_review_script(bug, category, difficulty, minutes(time_limit))

    @server.prompt(title="Interviewer script: production debugging")
    def production_debugging_interview(bug: str = "random", category: str = "", difficulty: str = "",
                                       time_limit: str = "20") -> str:
        """Run a production-debugging interview: open with the incident summary, answer each request for
        diagnostics with exactly that view, 20 minutes, score the investigation."""
        return production_debugging_script(bug, category, difficulty, minutes(time_limit))
