"""`bugdrill doctor --codebase PATH`: what bugdrill makes of a checkout, as its codebase says.

The checkout is recognised by one of the codebases (sandbox/codebases) from a few marker files;
the report then gives what that codebase's protocol says: the files a blind workspace holds, the
scenarios its runs take, the files a code review's window may fall in, its behavioural checks,
and the applicability table (every catalogue variant tried on this very checkout: where it
applies, and why the others do not). A directory no codebase recognises is said to be that,
with what each codebase looks for.
"""

from pathlib import Path

from sandbox import codebases
from sandbox.workspace import read_codebase


def diagnose(codebase):
    """{"codebase", "kind", "files", "scenarios", "review_files", "checks", "rows", "summary"}."""
    path = Path(codebase).resolve()
    found = codebases.recognise(path) if path.is_dir() else None
    report = {"codebase": str(path), "kind": found.name if found else None, "files": [], "scenarios": [],
              "review_files": [], "checks": 0, "rows": []}
    if found is not None:
        report.update(files=sorted(read_codebase(path)), scenarios=list(found.scenarios),
                      review_files=sorted(found.review_files()), checks=len(found.checks()),
                      rows=found.applicability(path))
    report["summary"] = summary(found, path, report)
    return report


def summary(found, path, report):
    if found is None:
        return (f"{path} is not a checkout bugdrill recognises: it looks for {codebases.looked_for()}. "
                "bugdrill has no runs or edits for it.")
    rows = report["rows"]
    bugs = {row["bug"] for row in rows}
    applying = {row["bug"] for row in rows if row["applies"]}
    variants = sum(row["applies"] for row in rows)
    return (f"{path}: {found.name}. {len(applying)} of {len(bugs)} catalogue bugs apply "
            f"({variants} of {len(rows)} variants); {len(bugs - applying)} have no home here.")


def table(report):
    """The report as text: what the codebase says, the applicable variants with their place,
    then the others with why not."""
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
        lines += ["", "applies:"]
        lines += [f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['where']} ({r['function']})"
                  for r in applying]
    reasons = {r["reason"] for r in others}
    if others and not applying and len(reasons) == 1:  # one reason for all: said once
        lines += ["", f"does not apply: all {len(others)} variants: {reasons.pop()}"]
    elif others:
        lines += ["", "does not apply:"]
        lines += [f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['reason']}" for r in others]
    return "\n".join(lines)
