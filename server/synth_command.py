"""`bugdrill synth`: build (or go on building) the pool of synthesized bugs of a checkout, with a
progress bar, and print the per-family table, the throughput and the difficulty mix."""

import json
import os
import sys
from collections import Counter
from pathlib import Path

from sandbox import codebases


def add_command(command):
    p = command("synth", cmd_synth, "build the pool of synthesized bugs of a codebase: mutants kept only when a "
                                    "run against the baseline shows a symptom")
    p.add_argument("--codebase", default="builtin", help="builtin, or the path of a checkout bugdrill recognises")
    p.add_argument("--families", help="operator families separated by commas (default: all; --list-families)")
    p.add_argument("--list-families", action="store_true", help="print the families and exit")
    p.add_argument("--report", action="store_true",
                   help="print what the pool holds (every build's per-family table) and exit; measures nothing")
    p.add_argument("--save-ledger", action="store_true",
                   help="write what the pool holds to the project's ledger of this checkout "
                        "(bug_synth/ledgers/: measurements only, committed so later installs start from them) and exit")
    p.add_argument("--budget-minutes", type=float, default=10.0, help="stop starting mutants after this long")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="runs at once")
    p.add_argument("--limit", type=int, help="measure at most this many new mutants")
    p.add_argument("--steps", type=int, help="steps of every measured run (default: each scenario's own)")
    p.add_argument("--seed", type=int, default=0, help="the order families' mutants are tried in")
    p.add_argument("--scenarios", type=int, default=2,
                   help="further runs that execute its file an equivalent mutant is tried in (default 2; 0: "
                        "its first run alone)")


def checkout(name):
    """(codebase, source directory) for --codebase."""
    if name == "builtin":
        found = codebases.builtin()
        return found, found.source
    path = Path(name).expanduser().resolve()
    found = codebases.recognise(path) if path.is_dir() else None
    if found is None:
        raise ValueError(f"--codebase {name}: not a checkout bugdrill recognises ({codebases.looked_for()})")
    return found, path


def cmd_synth(args):
    from bug_synth import operators
    from bug_synth.build import build
    from server.progress_display import RunProgress

    if args.list_families:
        for family in operators.FAMILIES.values():
            print(f"{family.name:<28} {family.theme:<12} {family.description}")
        return 0
    codebase, source = checkout(args.codebase)
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    if args.report:
        return pool_report(codebase, source, families, args.json)
    if args.save_ledger:
        return save_ledger(codebase, source)
    with RunProgress(stream=sys.stderr, indent="") as progress:  # stdout is the table, or the JSON
        report = build(codebase, source, families, args.budget_minutes, args.workers, args.steps, args.limit,
                       args.seed, on_progress=progress.update, scenarios=args.scenarios)
    data = {**pool_data(codebase, report.pool, report.candidates),
            "measured": report.measured, "kept": report.kept, "seconds": round(report.seconds, 1),
            "workers": report.workers, "unreached": report.unreached, "per_cpu_hour": round(report.per_cpu_hour(), 1),
            "run_per_cpu_hour": round(report.per_cpu_hour(report.measured - report.unreached), 1),
            "stopped_by": report.stopped_by, "unrunnable": report.unrunnable}
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0


def pool_data(codebase, pool, candidates):
    """What the pool holds: the per-family table over every build, its size and difficulty mix."""
    from bug_synth.build import family_table

    kept = pool.kept()
    return {"codebase": codebase.name, "pool": str(pool.root), "families": family_table(pool, candidates),
            "pool_size": len(kept), "difficulty": dict(Counter(bug.difficulty for bug in kept))}


def pool_report(codebase, source, families, as_json):
    from bug_synth.build import candidate_mutants
    from bug_synth.pool import Pool

    _, candidates = candidate_mutants(codebase, source, families)
    data = pool_data(codebase, Pool(codebase, source), Counter(m.family for m in candidates))
    print(json.dumps(data, indent=2) if as_json else render(data))
    return 0


def save_ledger(codebase, source):
    from bug_synth import ledger
    from bug_synth.pool import Pool

    path, rows = ledger.save(Pool(codebase, source))
    print(f"{rows} measured mutants of this {codebase.name} checkout written to {path}")
    return 0


def render(data):
    lines = ["| family | candidates | tried | compiled | unreached (no run executes it) | observable | "
             "equivalent (in every run tried) | kept |",
             "|---|---|---|---|---|---|---|---|"]
    for row in data["families"]:
        lines.append(f"| {row['family']} | {row['candidates']} | {row['tried']} | {row['compiled']} | "
                     f"{row['unreached']} | {row['observable']} | {row['equivalent']} | {row['kept']} |")
    mix = ", ".join(f"{data['difficulty'].get(level, 0)} {level}" for level in ("easy", "medium", "hard"))
    totals = {name: sum(row[name] for row in data["families"]) for name in ("candidates", "tried", "unreached", "kept")}
    lines.append("")
    if "measured" in data:
        lines.append(build_line(data))
    lines.append(f"the pool ({data['codebase']}): {data['pool_size']} synthesized bugs ({mix}); "
                 f"{totals['tried']} of {totals['candidates']} candidates tried, {totals['unreached']} of them "
                 "unreached")
    if data.get("unrunnable"):
        lines.append(f"{data['unrunnable']} candidates lie in scripts no run executes; they are not measured")
    return "\n".join(lines)


def build_line(data):
    stopped = {"budget": "the budget ran out", "limit": "the mutant limit was reached",
               "exhausted": "every candidate is measured"}[data["stopped_by"]]
    run = data["measured"] - data["unreached"]
    workers = f"{data['workers']} worker{'s' if data['workers'] != 1 else ''}"
    return (f"this build: {data['measured']} mutants tried in {data['seconds']} s with {workers}: {run} run "
            f"({data['kept']} kept) and {data['unreached']} unreached, not run (no pristine run executes the "
            f"statement they change); {data['run_per_cpu_hour']} run and {data['per_cpu_hour']} tried per "
            f"CPU-hour; stopped: {stopped}")
