"""The `bugdrill` command line. Every command but `demo` takes --json for scripts.

    bugdrill demo [--bug B] [--seed S]                  a production-debugging interview over MCP, end to end
    bugdrill train [--steps N] [--preset tiny|small]    train the practice codebase in a fresh copy
    bugdrill train --codebase NANOCHAT [--bug B]        train a nanochat checkout offline, against its baseline
    bugdrill doctor --codebase PATH                     which catalogue bugs a codebase can hold, and where
    bugdrill bugs [--category C] [--priority P] [--difficulty D]
    bugdrill inject BUG|random --workspace DIR [--variant N] [--seed S] [--codebase builtin|PATH] [--reveal]
    bugdrill reveal --workspace DIR
    bugdrill restore --workspace DIR
    bugdrill check --workspace DIR                      fixed or not, without naming the bug
    bugdrill export-patches DIR [--split public]        one `git apply`-able patch per public variant
    bugdrill validate [--bugs 1,2] [--all-variants] [--markdown FILE]   the symptom matrix against baselines
    bugdrill bench [--bugs 1,2] [--matrix]              probe overhead, step times, time to a symptom
    bugdrill eval [--agent reference|"COMMAND"] [--bugs 1,4] [--bugs-per-episode 0,1,2] [--shard i/n]
                                                        blind episodes scored by behaviour (Inspect AI log)
    bugdrill report LOG_OR_DIR [...]                    solve rates with 95% intervals from eval logs
    bugdrill selfcheck [--device cuda|cpu] [--codebase NANOCHAT] [--minutes 8] [--json OUT]
                                                        short runs on this device, one table (GPU check)
    bugdrill serve [--role interviewer|candidate] [--interview ID] [--http [--host H] [--port N]]
                   [--workspaces DIR] [--max-verify N]  the MCP server (stdio by default)

Bad input is one line on stderr and exit status 2; nothing is half-written.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bug_catalog.catalog import UnknownBug, load_catalog
from bug_catalog.checking import run_checks
from bug_catalog.selection import choose, matching
from bug_catalog.split import SPLITS, variants_in
from bug_catalog.targets import symptom_on_codebase
from evals.cli import add_commands as add_eval_commands
from sandbox.codebase import PICOCHAT_DIR, copy_codebase
from sandbox.workspace import (
    WorkspaceError, apply_variants, create_workspace, load_answer_key, read_codebase, restore_workspace,
)


class UsageError(Exception):
    pass


def emit(args, data, text):
    print(json.dumps(data, indent=2) if args.json else text)


def resolve_codebase(name):
    if name == "builtin":
        return PICOCHAT_DIR
    path = Path(name)
    if not path.is_dir():
        raise UsageError(f"codebase {name} is not a directory")
    return path


def cmd_demo(args):
    from server.demo import run_demo

    return run_demo(bug=args.bug, seed=args.seed, state_dir=args.state)


def cmd_train(args):
    if args.codebase:  # a nanochat checkout: data, tokenizer and base_train offline, against a baseline
        from server.nanochat_train import train_nanochat
        return train_nanochat(args.codebase, args.steps, args.bug, args.variant, args.seed, args.device_type,
                              args.workspace)
    workdir = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="bugdrill-train-")) / "picochat"
    copy_codebase(PICOCHAT_DIR, workdir)
    print(f"practice codebase copied to {workdir}", file=sys.stderr)
    command = [sys.executable, "-m", "scripts.base_train", f"--preset={args.preset}", f"--num_iterations={args.steps}"]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr)
    return subprocess.run(command, cwd=workdir).returncode


def cmd_doctor(args):
    from server.doctor import diagnose, table

    report = diagnose(args.codebase)
    emit(args, report, table(report))
    return 0 if report["kind"] else 1


def cmd_bugs(args):
    records = sorted(matching(args.category, args.priority, args.difficulty), key=lambda r: r.id)
    data = [{"id": r.id, "slug": r.slug, "title": r.title, "category": r.category, "priority": r.priority,
             "difficulty": r.difficulty, "variants": len(r.variants), "observable": r.observable,
             "scenario": r.scenario} for r in records]
    lines = [f"{r.id:3d}  P{r.priority}  {r.difficulty:<6}  {r.category:<22}  {r.title}" for r in records]
    emit(args, data, "\n".join(lines) or "no bug matches")
    return 0


def cmd_inject(args):
    codebase = resolve_codebase(args.codebase)
    record, variant = choose(args.bug, args.variant, args.seed, category=args.category,
                             priority=args.priority, difficulty=args.difficulty)
    key = create_workspace(args.workspace, codebase, [(record, variant)], args.codebase, args.seed)
    if args.reveal:
        emit(args, key["bugs"], "\n".join(f"bug {b['id']} ({b['slug']}), variant {b['variant']}\n{b['diff']}"
                                          for b in key["bugs"]))
    else:
        emit(args, {"workspace": key["workspace"]}, f"workspace ready: {key['workspace']}")
    return 0


def cmd_reveal(args):
    key = load_answer_key(args.workspace)
    catalog = load_catalog()
    bugs = [{**{k: v for k, v in b.items() if k != "pristine"}, "title": catalog[b["id"]].title,
             "explanation": catalog[b["id"]].explanation.strip(), "symptom_on_this_codebase": symptom_on_codebase(b)}
            for b in key["bugs"]]
    text = "\n\n".join(f"bug {b['id']}: {b['title']} (variant {b['variant']})\n{b['diff']}\n{b['explanation']}"
                       + (f"\n{b['symptom_on_this_codebase']}" if b["symptom_on_this_codebase"] else "")
                       for b in bugs)
    emit(args, bugs, text)
    return 0


def cmd_restore(args):
    restored = restore_workspace(args.workspace)
    emit(args, {"restored": restored}, f"restored {len(restored)} file(s) to pristine")
    return 0


def cmd_check(args):
    key = load_answer_key(args.workspace)
    catalog = load_catalog()
    from bug_catalog.targets import check_name  # a nanochat workspace's bug has nanochat's check

    names = [check_name(catalog[b["id"]], b) for b in key["bugs"]]
    results = run_checks(args.workspace, names)
    fixed = all(results[name]["passed"] for name in names)
    emit(args, {"fixed": fixed}, "fixed" if fixed else "not fixed")
    return 0 if fixed else 1


def cmd_export_patches(args):
    out = Path(args.directory)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    files = read_codebase(PICOCHAT_DIR)
    written = []
    for record in sorted(load_catalog().values(), key=lambda r: r.id):
        for _, variant in variants_in(record, args.split):
            bug = apply_variants(dict(files), [(record, variant)])[0]
            path = out / f"{record.id:02d}-{record.slug}--{variant.name}.patch"
            path.write_text(bug.diff)
            written.append(path.name)
    emit(args, {"patches": written}, f"wrote {len(written)} patches to {out}")
    return 0


def cmd_validate(args):
    from sandbox.matrix import table, validate

    bugs = parse_bug_list(args.bugs)
    started = time.time()

    def progress(row):
        print(f"{row.bug:3d} {row.variant:<28} {row.verdict[:60]:<60} {row.seconds:6.1f}s", file=sys.stderr)

    rows = validate(bugs, jobs=args.jobs, measure_all=args.all_variants, on_row=progress)
    seconds = time.time() - started
    missing = [r for r in rows if r.verdict == "missing"]
    footer = f"\n\n{len(rows)} rows, {len(missing)} missing their recorded symptom, {seconds:.0f} s in all"
    text = table(rows) + footer
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(MATRIX_PREAMBLE + table(rows, publish=True) + footer + "\n")
    emit(args, {"rows": [r.model_dump() for r in rows], "seconds": round(seconds, 1)}, text)
    return 1 if missing else 0


MATRIX_PREAMBLE = """# Validation matrix

Written by `bugdrill validate --markdown docs/validation.md`: each bug variant injected into a
fresh workspace, trained with the scenario its record names, classified against the pristine
baseline of the same request (seed 42, one thread, CPU), and compared with the symptom classes
the record lists. Seconds run from injection to the classified symptom; baselines are cached.
Variants held out for evals (bug_catalog/split.py) appear by their measurements only.

"""


def parse_bug_list(text):
    if not text:
        return None
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise UsageError(f"--bugs takes bug ids separated by commas, not {text!r}") from None


def cmd_bench(args):
    from server.bench import FAST_BUGS, run_bench

    bugs = parse_bug_list(args.bugs) or FAST_BUGS
    return run_bench(sorted(bugs), pairs=args.pairs, matrix=args.matrix)


def cmd_selfcheck(args):
    from server.selfcheck import selfcheck

    return selfcheck(args.device, args.minutes, args.codebase, args.json_out)


def cmd_serve(args):
    """The MCP server. stdout belongs to the protocol (stdio), so everything else goes to stderr."""
    import logging

    from server.app import build_server
    from server.interviews import InterviewError

    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="bugdrill %(levelname)s %(message)s")
    if args.interview and args.role != "candidate":
        raise UsageError("--interview binds a candidate server to one interview: use it with --role candidate")
    if args.max_verify is not None and args.max_verify < 1:
        raise UsageError("--max-verify must be at least 1")
    try:
        server = build_server(args.role, args.interview, args.workspaces, args.max_verify)
    except InterviewError as error:
        raise UsageError(str(error)) from None
    if args.http:
        print(f"bugdrill serve: {args.role} server on http://{args.host}:{args.port}/mcp", file=sys.stderr)
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="bugdrill", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, handler, help):
        p = commands.add_parser(name, help=help)
        p.set_defaults(handler=handler)
        if name not in ("demo", "train"):
            p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = command("demo", cmd_demo, "play a short production-debugging interview over MCP, end to end")
    p.add_argument("--bug", help="bug id or slug (default: drawn from a few with clear symptoms)")
    p.add_argument("--seed", type=int)
    p.add_argument("--state", help="state directory to keep (default: a fresh temporary one)")
    p = command("train", cmd_train, "train the built-in practice codebase in a fresh copy")
    p.add_argument("--preset", choices=["tiny", "small"], default="tiny")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps")
    p.add_argument("--workspace", default=None, help="directory to copy into (must not exist)")
    p.add_argument("--codebase", help="a nanochat checkout to train instead (offline, tiny config, with the probe)")
    p.add_argument("--bug", help="with --codebase: inject this bug (id, slug or random) into a blind copy first")
    p.add_argument("--variant", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device-type", default="", help="with --codebase: cuda, cpu or mps (default: nanochat's choice)")

    def filters(p):
        p.add_argument("--category")
        p.add_argument("--priority", type=int, choices=[1, 2, 3])
        p.add_argument("--difficulty", choices=["easy", "medium", "hard"])

    filters(command("bugs", cmd_bugs, "list the catalogue"))
    command("doctor", cmd_doctor, "which catalogue bugs a codebase can hold, and where").add_argument(
        "--codebase", required=True, help="a checkout (nanochat) or the built-in codebase's path")
    p = command("inject", cmd_inject, "make a blind workspace with one bug in it")
    p.add_argument("bug", help="bug id, slug, or random")
    p.add_argument("--workspace", required=True)
    p.add_argument("--variant", type=int, help="variant number (default: drawn with the seed)")
    p.add_argument("--seed", type=int)
    p.add_argument("--codebase", default="builtin", help="builtin or a path")
    p.add_argument("--reveal", action="store_true", help="print the bug and its diff")
    filters(p)
    for name, handler, help in (("reveal", cmd_reveal, "show the bug in a workspace"),
                                ("restore", cmd_restore, "put a workspace back to pristine"),
                                ("check", cmd_check, "is the workspace's bug fixed?")):
        command(name, handler, help).add_argument("--workspace", required=True)
    p = command("export-patches", cmd_export_patches, "write one patch per public bug variant")
    p.add_argument("directory")
    p.add_argument("--split", choices=SPLITS, default="public",
                   help="public (default): the variants published; held_out: those evals draw; all")
    p = command("validate", cmd_validate, "inject every variant, run it, and check its recorded symptom")
    p.add_argument("--bugs", help="bug ids separated by commas (default: the whole catalogue)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once")
    p.add_argument("--all-variants", action="store_true",
                   help="also run variants recorded as showing nothing in a run (code review only, CUDA only)")
    p.add_argument("--markdown", help="also write the table to this file")
    p = command("bench", cmd_bench, "print probe overhead, step times, time to a symptom (and the matrix's)")
    p.add_argument("--bugs", help="bugs to time from injection to symptom (default: a fast handful)")
    p.add_argument("--pairs", type=int, default=3, help="interleaved runs with and without the probe")
    p.add_argument("--matrix", action="store_true", help="also time the whole validation matrix")
    add_eval_commands(commands, command)
    p = commands.add_parser("selfcheck", help="check this machine's device runs bugdrill: one plan, one table")
    p.set_defaults(handler=cmd_selfcheck)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu: the same plan on CPU baselines")
    p.add_argument("--codebase", help="a nanochat checkout: adds its 20-step run with torch.compile on and off")
    p.add_argument("--minutes", type=float, default=8.0, help="the plan stops itself before this many minutes")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the rows to this JSON file")
    p = commands.add_parser("serve", help="run the MCP server (stdio, or streamable HTTP with --http)")
    p.set_defaults(handler=cmd_serve)
    p.add_argument("--role", choices=["interviewer", "candidate"], default="interviewer",
                   help="candidate: no reveal, no answer key, no catalogue locations (for agents under evaluation)")
    p.add_argument("--interview", metavar="ID", help="candidate only: serve this one interview and nothing else "
                   "(no catalogue either); without it a candidate server reaches only the interviews it starts")
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")
    p.add_argument("--workspaces", metavar="DIR", help="where new workspaces go (default: <state dir>/workspaces)")
    p.add_argument("--max-verify", type=int, metavar="N", help="verify_fix calls allowed per interview")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.handler(args))
    except (UsageError, WorkspaceError, UnknownBug, ValueError) as error:
        print(f"bugdrill {args.command}: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
