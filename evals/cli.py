"""`bugdrill eval` and `bugdrill report`: the eval for agents without a model in Inspect (the
reference agent, or a command-line agent run isolated), and the report of any bugdrill eval's
Inspect logs. Models under test go through `inspect eval bugdrill/ml_debugging` directly.

    bugdrill eval [--agent reference|"COMMAND"] [--bugs 1,4] [--bugs-per-episode 0,1,2] [--shard i/n] ...
    bugdrill report LOG_OR_DIR [...] [--json]
"""

import json
import os
import sys

from server.interviews import DEFAULT_DIAGNOSES_PER_BUG

# Each episode trains on one thread and checks in two child processes: one episode per two
# cores keeps runs from competing for a core, which would change what the throughput and
# timing views show.
DEFAULT_MAX_SAMPLES = max(1, (os.cpu_count() or 2) // 2)


def add_commands(commands, command):
    p = command("eval", cmd_eval, "run blind episodes with the reference agent or a command-line agent; report")
    p.add_argument("--agent", default="reference",
                   help="'reference' (the rule-book agent), 'adversary' or 'adversary-shell' (issue 15's attacks, "
                        "in process or as an isolated command-line agent), or a command line run isolated as an agent")
    p.add_argument("--bugs", help="bug ids or slugs separated by commas (default: the catalogue)")
    p.add_argument("--category")
    p.add_argument("--priority", type=int, choices=[1, 2, 3])
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"])
    p.add_argument("--kind", default="production_debugging", choices=["production_debugging", "code_review"])
    p.add_argument("--episodes-per-bug", type=int, default=1)
    p.add_argument("--bugs-per-episode", default="1", help="0 (controls), 1, 2 (compound), or several: 0,1,2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default="catalogue", choices=["catalogue", "synth"],
                   help="synth: episodes on synthesized bugs from the codebase's pool (bugdrill synth builds it)")
    p.add_argument("--synth-bugs", type=int, default=10, help="with --source synth: how many bugs are drawn")
    p.add_argument("--split", default="held_out", choices=["held_out", "public", "all"])
    p.add_argument("--time-limit", type=float, default=20, help="minutes per episode")
    p.add_argument("--diagnoses-per-bug", type=int, default=DEFAULT_DIAGNOSES_PER_BUG,
                   help="the agent's diagnosis budget per injected bug (a control: one bug's worth); "
                        f"default {DEFAULT_DIAGNOSES_PER_BUG}")
    p.add_argument("--shard", help="i/n: every n-th episode from the i-th (for job arrays)")
    p.add_argument("--codebase", default="builtin", help="'builtin' (the practice codebase) or the absolute path "
                   "of a checkout bugdrill recognises (bugdrill doctor --codebase says)")
    p.add_argument("--log-dir", default="logs", help="where the Inspect log goes")
    p.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES,
                   help=f"episodes at once (default {DEFAULT_MAX_SAMPLES}: one per two cores)")
    p = command("report", cmd_report, "solve rates with confidence intervals from bugdrill eval logs")
    p.add_argument("logs", nargs="+", help="Inspect log files or directories (all shards of one eval)")


def _inspect():
    try:
        import inspect_ai
    except ImportError:
        raise ValueError("evals need Inspect AI: pip install 'bugdrill[eval]'") from None
    return inspect_ai


def cmd_eval(args):
    inspect_ai = _inspect()
    from evals import report
    from evals.task import build_task

    counts = [int(c) for c in args.bugs_per_episode.split(",") if c.strip()]
    in_process = args.agent in ("reference", "adversary")
    command = None if in_process else args.agent
    if args.agent == "adversary-shell":  # the adversary as a command-line agent, isolated
        from evals.adversary_solver import shell_command
        command = shell_command()
    task = build_task(args.bugs, args.category, args.priority, args.difficulty, args.kind, args.episodes_per_bug,
                      counts, args.seed, args.split, args.time_limit, args.agent if in_process else "reference",
                      args.shard, command,
                      codebase=args.codebase, diagnoses_per_bug=args.diagnoses_per_bug, source=args.source,
                      synth_bugs=args.synth_bugs)
    # no model is called by these agents; Inspect needs one named, and mockllm needs no network
    logs = inspect_ai.eval(task, model="mockllm/model", log_dir=args.log_dir, max_samples=args.max_samples,
                           display="plain" if sys.stderr.isatty() else "none")
    failed = [log for log in logs if log.status != "success"]
    if failed:
        print(f"bugdrill eval: the eval ended {failed[0].status}: {failed[0].error}", file=sys.stderr)
        return 1
    rows = report.rows(report.load_episodes([log.location for log in logs]))
    _print_report(args, rows, [log.location for log in logs])
    return 0


def cmd_report(args):
    _inspect()
    from evals import report

    _print_report(args, report.rows(report.load_episodes(args.logs)), args.logs)
    return 0


def _print_report(args, rows, logs):
    from evals import report

    if args.json:
        print(json.dumps({"logs": list(logs), "rows": report.as_json(rows)}, indent=2))
    else:
        print(report.render(rows))
        print("logs: " + ", ".join(map(str, logs)))
