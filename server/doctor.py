"""`bugdrill doctor --codebase PATH`: what bugdrill makes of a checkout, as its codebase says.

The checkout is recognised by one of the codebases (sandbox/codebases) from a few marker files;
the report then gives what that codebase's protocol says: the files a blind workspace holds, the
scenarios its runs take, the files a code review's window may fall in, its behavioural checks,
and the applicability table (every catalogue variant tried on this very checkout: where it
applies, and why the others do not). A directory no codebase recognises is said to be that,
with what each codebase looks for.

The table's "applies" is the edit finding its construct in the text. `--measure` measures each
such variant on the checkout (sandbox/applicability.py: the edit changes behaviour, its check
fits the checkout, its default run shows a symptom) and caches the verdicts per checkout digest
and device; without it, the verdicts already in that cache are shown. The built-in codebase is
measured by `bugdrill validate` instead.
"""

from pathlib import Path

from sandbox import applicability, codebases
from sandbox.workspace import read_codebase


def diagnose(codebase, measure=False, bugs=None, on_measured=None):
    """{"codebase", "kind", "files", "scenarios", "review_files", "checks", "rows", "measured_here",
    "summary"}; each row has "measured": the measured row (with "cached") or None. `bugs`: ids the
    table keeps (all by default); `measure`: measure the variants that apply and have no verdict
    in the cache yet, calling on_measured(row) after each."""
    path = Path(codebase).resolve()
    found = codebases.recognise(path) if path.is_dir() else None
    report = {"codebase": str(path), "kind": found.name if found else None, "files": [], "scenarios": [],
              "review_files": [], "checks": 0, "rows": [], "measured_here": False, "measure_asked": measure}
    if found is not None:
        rows = [row for row in found.applicability(path) if bugs is None or row["bug"] in bugs]
        report.update(files=sorted(read_codebase(path)), scenarios=list(found.scenarios),
                      review_files=sorted(found.review_files()), checks=len(found.checks()), rows=rows,
                      measured_here=applicability.measured_here(found))
        if report["measured_here"]:
            add_measurements(found, path, rows, measure, on_measured)
    report["summary"] = summary(found, path, report)
    return report


def add_measurements(codebase, path, rows, measure, on_measured):
    """Each row's "measured": from the cache, or (`measure`, rows that apply) measured now."""
    from bug_catalog.catalog import load_catalog

    catalog = load_catalog()
    known = applicability.cached_rows(codebase, path) if any(row["applies"] for row in rows) else {}
    for row in rows:
        row["measured"] = None
        if not row["applies"]:
            continue
        record = catalog[row["bug"]]
        variant = next(v for v in record.variants if v.name == row["variant"])
        edit = codebase.injected(record, variant).edit
        if measure:  # a complete verdict in the cache comes back as it is, marked cached
            try:
                row["measured"] = applicability.measure(codebase, path, record, variant, run=True)
            except applicability.MeasureError as error:
                row["measure_error"] = str(error)
        elif edit in known:
            row["measured"] = {**known[edit], "cached": True}
        if measure and on_measured:
            on_measured(row)


def summary(found, path, report):
    if found is None:
        return (f"{path} is not a checkout bugdrill recognises: it looks for {codebases.looked_for()}. "
                "bugdrill has no runs or edits for it.")
    rows = report["rows"]
    bugs = {row["bug"] for row in rows}
    applying = {row["bug"] for row in rows if row["applies"]}
    variants = sum(row["applies"] for row in rows)
    said = (f"{path}: {found.name}. {len(applying)} of {len(bugs)} catalogue bugs apply "
            f"({variants} of {len(rows)} variants); {len(bugs - applying)} have no home here.")
    if report["measured_here"] and variants:
        said += " " + measured_summary(path, [row for row in rows if row["applies"]])
    elif report.get("measure_asked"):
        said += " The built-in codebase is not measured here: `bugdrill validate` is its measurement."
    return said


def measured_summary(path, applying):
    measured = [row["measured"] for row in applying if row.get("measured")]
    if not measured:
        return (f"None of the {len(applying)} is measured on this checkout yet: bugdrill doctor --codebase {path} "
                "--measure runs each one's check on pristine and bugged copies, and its default run.")
    applies = [m for m in measured if m["applies"]]
    ran = [m for m in applies if m["ran"]]
    production = sum(m["production_debugging"] for m in ran)
    unmeasured = len(applying) - len(measured)
    return (f"Measured on this checkout ({measured[0]['device']}): {len(applies)} of {len(measured)} measured "
            f"variants apply; of the {len(ran)} whose default run was measured, {production} show a symptom "
            f"(production debugging) and {len(ran) - production} are for code review only"
            + (f"; {unmeasured} not measured yet (--measure)." if unmeasured else "."))


def measured_text(measured):
    """One row's measured verdict, for the table."""
    if not measured["applies"] or not measured["ran"] or not measured["production_debugging"]:
        text = f"{applicability.verdict(measured)}" + (f": {measured['reason']}" if measured["reason"] else "")
    else:
        text = (f"{applicability.verdict(measured)}: its default run ({measured['steps']} steps run) shows "
                f"{', '.join(measured['classes'])}")
    when = "cached" if measured["cached"] else f"measured now, {measured['seconds']} s"
    return f"{text} ({when})"


def table(report):
    """The report as text: what the codebase says, the applicable variants with their place (and
    their measured verdicts), then the others with why not."""
    lines = [report["summary"]]
    if report["kind"] is None:
        return lines[0]
    scenarios = ", ".join(report["scenarios"]) or "none: every run is the codebase's own training script"
    lines += ["", f"files in a workspace: {len(report['files'])}", f"scenarios: {scenarios}",
              f"code-review windows fall in: {', '.join(report['review_files']) or 'the injected bug only'}",
              f"behavioural checks: {report['checks']}"]
    applying = [r for r in report["rows"] if r["applies"]]
    others = [r for r in report["rows"] if not r["applies"]]
    if applying:
        lines += ["", "applies:" if not report["measured_here"] else
                  "applies (the edit finds its construct; measured: what a measurement found here):"]
        for r in applying:
            lines.append(f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['where']} ({r['function']})")
            if r.get("measured"):
                lines.append(f"      measured: {measured_text(r['measured'])}")
            elif r.get("measure_error"):
                lines.append(f"      not measured: {r['measure_error']}")
    reasons = {r["reason"] for r in others}
    if others and not applying and len(reasons) == 1:  # one reason for all: said once
        lines += ["", f"does not apply: all {len(others)} variants: {reasons.pop()}"]
    elif others:
        lines += ["", "does not apply:"]
        lines += [f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['reason']}" for r in others]
    return "\n".join(lines)
