"""The task statement an agent is given: the same text for every episode of a kind on a
codebase, so it says nothing about how many bugs an episode holds or where."""

from sandbox.codebases import builtin

COMMON = """\
You are an ML engineer. A GPT training codebase ({codebase}) is in the workspace that your
bugdrill tools act on. It may contain no
training bug, one, or two: bugs of the kind that let a run finish while it learns the wrong
thing, learns slowly, or breaks under some conditions.

{approach}

For each bug you find: call submit_diagnosis once with its file, line, function and what is
wrong; fix it with edit_file; check with verify_fix. If you conclude that nothing is wrong,
submit no diagnosis and change nothing: a diagnosis or a change where there is no bug counts
against you. When you are done, give a short final answer saying what you found."""

APPROACH = {
    "production_debugging": (
        "Debug it like a production incident: start from the symptoms. run_training trains the "
        "workspace and compares it with a pristine baseline; get_view and get_plot show diagnostics "
        "(log, grad_norms, attention, activations, memory, throughput, eval, samples, stderr, "
        "nonfinite); read_file, list_files and search_code show the code."),
    "code_review": (
        "This is a code review: get_snippet shows the code under review (20-30 numbered lines); "
        "read_file, list_files and search_code show the rest of the workspace. There are no logs "
        "to start from."),
}


def statement(kind, codebase=None):
    """codebase: the episode's codebase (sandbox/codebases), the built-in one by default."""
    return COMMON.format(codebase=(codebase or builtin()).what, approach=APPROACH[kind])
