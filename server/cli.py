"""The `bugdrill` command line: ML-debugging drills on a GPT codebase with a silently injected bug.

    bugdrill demo [--bug B] [--seed S]                  a production-debugging interview over MCP, end to end
    bugdrill train [--steps N] [--preset tiny|small] [--threads N]  train the practice codebase in a fresh copy
    bugdrill train --codebase CHECKOUT [--bug B]        train a recognised checkout offline, against its baseline
    bugdrill doctor --codebase PATH [--measure] [--bugs 1,4]   what a checkout is to bugdrill; which catalogue
                                                        bugs apply, where (--measure: measured on it, cached)
    bugdrill bugs [--category C] [--priority P] [--difficulty D]
    bugdrill inject BUG|random --workspace DIR [--variant N] [--seed S] [--codebase builtin|PATH] [--reveal]
    bugdrill reveal --workspace DIR
    bugdrill restore --workspace DIR
    bugdrill check --workspace DIR                      fixed or not, without naming the bug
    bugdrill export-patches DIR [--split public]        one `git apply`-able patch per public variant
    bugdrill validate [--bugs 1,2] [--all-variants] [--markdown FILE]   the symptom matrix against baselines
    bugdrill synth [--codebase builtin|PATH] [--families F,G] [--budget-minutes N] [--workers N]
                                                        build the pool of synthesized bugs (measured mutants)
    bugdrill bench [--bugs 1,2] [--matrix]              server start, probe overhead, step times, time to a symptom
    bugdrill eval [--agent reference|"COMMAND"] [--bugs 1,4] [--bugs-per-episode 0,1,2] [--shard i/n]
                                                        blind episodes scored by behaviour (Inspect AI log)
    bugdrill report LOG_OR_DIR [...]                    solve rates with 95% intervals from eval logs
    bugdrill selfcheck [--device cuda|cpu] [--codebase NANOCHAT] [--minutes 8] [--json OUT]
                                                        short runs on this device, one table (GPU check)
    bugdrill serve [--role interviewer|candidate] [--interview ID] [--http [--host H] [--port N]]
                   [--workspaces DIR] [--max-verify N]  the MCP server (stdio by default)

Commands that print a result take --json for scripts; `bugdrill --help` lists them. Bad input is
one line on stderr and exit status 2; nothing is half-written.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bug_catalog.catalog import UnknownBug, load_catalog, load_records
from bug_catalog.checking import run_checks
from bug_catalog.selection import choose, matching
from bug_catalog.split import SPLITS, variants_in
from bug_synth.synth_bug import from_entry
from evals.cli import add_commands as add_eval_commands
from server.synth_command import add_command as add_synth_command
from sandbox import codebases
from sandbox.codebase import copy_codebase
from sandbox.workspace import (
    WorkspaceError, apply_variants, create_workspace, load_answer_key, read_codebase, restore_workspace,
)


class UsageError(Exception):
    pass


def emit(args, data, text):
    print(json.dumps(data, indent=2) if args.json else text)


def resolve_codebase(name):
    if name == "builtin":
        return codebases.builtin().source
    path = Path(name)
    if not path.is_dir():
        raise UsageError(f"codebase {name} is not a directory")
    return path


def cmd_demo(args):
    from server.demo import run_demo

    return run_demo(bug=args.bug, seed=args.seed, state_dir=args.state)


def cmd_train(args):
    if args.codebase:  # a checkout, trained the way its codebase says, against its baseline
        from server.codebase_train import train_checkout
        return train_checkout(args.codebase, args.steps, args.bug, args.variant, args.seed, args.device_type,
                              args.workspace, threads=args.threads)
    source = codebases.builtin().source
    workdir = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="bugdrill-train-")) / source.name
    copy_codebase(source, workdir)
    print(f"practice codebase copied to {workdir}", file=sys.stderr)
    flags = [f"--preset={args.preset}", f"--num_iterations={args.steps or 100}"]
    # the script runs torch on one CPU thread unless OMP_NUM_THREADS asks for more (its banner says how many)
    threads = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    shown = [*(f"{name}={value}" for name, value in threads.items()), "python", "-m", "scripts.base_train", *flags]
    print(f"$ {' '.join(shown)}", file=sys.stderr)
    command = [sys.executable, "-m", "scripts.base_train", *flags]
    return subprocess.run(command, cwd=workdir, env={**os.environ, **threads}).returncode


def cmd_doctor(args):
    from server.doctor import diagnose, measured_text, table

    def said(row):  # a measurement takes minutes: each verdict as it comes
        verdict = measured_text(row["measured"]) if row.get("measured") else row.get("measure_error", "")
        print(f"bug {row['bug']} {row['variant']}: {verdict}", file=sys.stderr, flush=True)

    report = diagnose(args.codebase, measure=args.measure, bugs=parse_bug_list(args.bugs), on_measured=said)
    emit(args, report, table(report))
    return 0 if report["kind"] else 1


def categories_named(name):
    """The catalogue's categories that --category NAME selects: NAME itself and the categories of its
    family ("training" selects "training (distributed)" too). An unknown name is a usage error that
    lists the categories."""
    if name is None:
        return None
    categories = sorted({record.category for record in load_records().values()})
    selected = tuple(c for c in categories if c == name or c.startswith(f"{name} ("))
    if not selected:
        raise UsageError(f"no category {name!r}: the categories are {', '.join(categories)}")
    return selected


def cmd_bugs(args):
    records = sorted(matching(categories_named(args.category), args.priority, args.difficulty, records_only=True),
                     key=lambda r: r.id)
    data = [{"id": r.id, "slug": r.slug, "title": r.title, "category": r.category, "priority": r.priority,
             "difficulty": r.difficulty, "variants": len(r.variants), "observable": r.observable,
             "scenario": r.scenario} for r in records]
    row = "{:>3}  {:<8}  {:<10}  {:<22}  {}"
    lines = [row.format("id", "priority", "difficulty", "category", "title")]
    lines += [row.format(r.id, f"P{r.priority}", r.difficulty, r.category, r.title) for r in records]
    emit(args, data, "\n".join(lines) if records else "no bug matches")
    return 0


def cmd_inject(args):
    source = resolve_codebase(args.codebase)
    codebase = codebases.builtin() if args.codebase == "builtin" else codebases.recognise(source)
    if codebase is None:
        raise UsageError(f"{args.codebase} is not a recognised checkout ({codebases.looked_for()})")
    if args.bug == "synth" or args.bug.startswith("synth:"):
        record, variant = synthesized_pick(codebase, source, args.bug.partition(":")[2], args.seed, args.difficulty)
    else:
        record, variant = builtin_pick(args, codebase, source)
    name = "builtin" if args.codebase == "builtin" else codebase.name if codebase.source is None else args.codebase
    key = create_workspace(args.workspace, source, [(record, variant)], name, args.seed, codebase_kind=codebase.name)
    if args.reveal:
        emit(args, key["bugs"], "\n".join(f"bug {b['id']} ({b['slug']}), variant {b['variant']}\n{b['diff']}"
                                          for b in key["bugs"]))
    else:
        emit(args, {"workspace": key["workspace"]}, f"workspace ready: {key['workspace']}")
    return 0


def synthesized_pick(codebase, source, bug_id, seed, difficulty):
    """(SynthBug, its mutated text) from the checkout's pool (bug_synth): the one named, or drawn."""
    from bug_synth.pool import Pool, PoolError

    try:
        return Pool(codebase, source).pick(bug_id, seed or 0, difficulty)
    except PoolError as error:
        raise UsageError(str(error)) from None


def builtin_pick(args, codebase, source):
    """The catalogue's (record, variant) as the codebase's own edit."""
    record, variant = choose(args.bug, args.variant, args.seed, category=categories_named(args.category),
                             priority=args.priority, difficulty=args.difficulty)
    try:  # the codebase's own edit of the variant, if it has one for this checkout
        record, variant = codebases.applicable_pick(codebase, source, record, variant, args.variant is None,
                                                    args.seed)
        variant = codebase.injected(record, variant)
    except codebases.CodebaseError as error:
        raise UsageError(f"{error} (bugdrill doctor --codebase {args.codebase} lists what applies)") from None
    return record, variant


def cmd_reveal(args):
    from server.interviews import synthesized_reveal

    key = load_answer_key(args.workspace)
    catalog = load_catalog()
    codebase = codebases.of_key(key)
    bugs = [{**{k: v for k, v in b.items() if k != "pristine"}, "title": catalog[b["id"]].title,
             "explanation": catalog[b["id"]].explanation.strip(),
             "symptom_on_this_codebase": codebase.symptom_here(b["id"], codebases.source_of(key), b["variant"])}
            if not b.get("synth") else
            {**{k: v for k, v in b.items() if k not in ("pristine", "synth")},
             **synthesized_reveal(from_entry(b), b)}
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
    from server.runs import trains_like_pristine

    key = load_answer_key(args.workspace)
    catalog = load_catalog()
    codebase = codebases.of_key(key)
    synth = any(b.get("synth") for b in key["bugs"])
    # a synthesized bug has no check of its own: every check must pass, and its runs match pristine ones
    names = sorted(codebase.checks()) if synth else [codebase.check_for(catalog[b["id"]]) for b in key["bugs"]]
    results = run_checks(args.workspace, names, jobs=2) if names else {}
    fixed = all(results[name]["passed"] for name in names)
    if fixed and synth:
        fixed = trains_like_pristine(key, args.workspace, label="check")[0]
    emit(args, {"fixed": fixed}, "fixed" if fixed else "not fixed")
    return 0 if fixed else 1


def cmd_export_patches(args):
    out = Path(args.directory)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    files = read_codebase(codebases.builtin().source)
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
    parser = argparse.ArgumentParser(prog="bugdrill")
    commands = parser.add_subparsers(dest="command", required=True)
    takes_json = []

    def command(name, handler, help):
        p = commands.add_parser(name, help=help)
        p.set_defaults(handler=handler)
        if name not in ("demo", "train", "bench"):  # these print a transcript, a run's log or figures
            p.add_argument("--json", action="store_true", help="machine-readable output")
            takes_json.append(name)
        return p

    p = command("demo", cmd_demo, "play a short production-debugging interview over MCP, end to end")
    p.add_argument("--bug", help="bug id or slug (default: drawn from a few with clear symptoms)")
    p.add_argument("--seed", type=int)
    p.add_argument("--state", help="state directory to keep (default: a fresh temporary one)")
    p = command("train", cmd_train, "train the built-in practice codebase in a fresh copy")
    p.add_argument("--preset", choices=["tiny", "small"], default="tiny")
    p.add_argument("--steps", type=int, help="optimizer steps (default: 100; with --codebase, the codebase's "
                                              "own default run's)")
    p.add_argument("--workspace", default=None, help="directory to copy into (must not exist)")
    p.add_argument("--codebase", help="a checkout bugdrill recognises (bugdrill doctor --codebase says), trained "
                                      "instead: offline, its codebase's short config, with the probe")
    p.add_argument("--bug", help="with --codebase: inject this bug (id, slug or random) into a blind copy first")
    p.add_argument("--variant", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device-type", default="", help="with --codebase, where its runs take a device: cuda, cpu or "
                                                      "mps (default: the codebase's own choice)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch's CPU threads (default: one, or $OMP_NUM_THREADS if set; with --codebase, "
                        "$BUGDRILL_THREADS or one): a thread per core is many times slower on a busy machine")

    def filters(p):
        p.add_argument("--category", help="a category or a family of them: 'training' also selects "
                                          "'training (distributed)'")
        p.add_argument("--priority", type=int, choices=[1, 2, 3])
        p.add_argument("--difficulty", choices=["easy", "medium", "hard"])

    filters(command("bugs", cmd_bugs, "list the catalogue"))
    p = command("doctor", cmd_doctor, "which catalogue bugs a codebase can hold, and where")
    p.add_argument("--codebase", required=True, help="a checkout's path, or the built-in codebase's")
    p.add_argument("--measure", action="store_true",
                   help="measure each variant that applies on the checkout (its check on pristine and bugged "
                        "copies, its default run against the baseline); verdicts are cached per checkout and "
                        "device, and shown without --measure too")
    p.add_argument("--bugs", help="bug ids separated by commas: the rows shown and measured (default: all)")
    p = command("inject", cmd_inject, "make a blind workspace with one bug in it")
    p.add_argument("bug", help="bug id, slug, or random")
    p.add_argument("--workspace", required=True)
    p.add_argument("--variant", type=int, help="variant number (default: drawn with the seed)")
    p.add_argument("--seed", type=int)
    p.add_argument("--codebase", default="builtin", help="builtin, or the path of a checkout bugdrill recognises")
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
    p = command("bench", cmd_bench, "print the server's start to tools/list, probe overhead, step times, time to a "
                                    "symptom (and the matrix's)")
    p.add_argument("--bugs", help="bugs to time from injection to symptom (default: a fast handful)")
    p.add_argument("--pairs", type=int, default=3, help="interleaved runs with and without the probe")
    p.add_argument("--matrix", action="store_true", help="also time the whole validation matrix")
    add_eval_commands(commands, command)
    add_synth_command(command)
    p = commands.add_parser("selfcheck", help="check this machine's device runs bugdrill: one plan, one table")
    p.set_defaults(handler=cmd_selfcheck)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu: the same plan on CPU baselines")
    p.add_argument("--codebase", help="a checkout: adds the rows its codebase defines (bugdrill doctor --codebase "
                                      "names the codebase; see the README)")
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
    parser.description = (f"{__doc__.splitlines()[0]} These commands take --json (machine-readable output): "
                          f"{', '.join(takes_json)}; selfcheck's --json OUT writes its rows to a file.")
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
