"""`bugdrill doctor --codebase PATH`: which catalogue bugs a codebase can hold, and where.

picochat (the built-in codebase) holds every bug. A nanochat checkout is recognised by its
files and gets the applicability table of bug_catalog/targets/nanochat.py: every variant's edit
is tried on the checkout, so the table says what this very checkout allows. Anything else is
said to be neither, plainly.
"""

from pathlib import Path

from bug_catalog.catalog import load_catalog


def kind_of(codebase):
    """"picochat", "nanochat" or None."""
    from bug_catalog.targets.nanochat import is_nanochat

    path = Path(codebase)
    if (path / "picochat" / "gpt.py").is_file() and (path / "scripts" / "base_train.py").is_file():
        return "picochat"
    if is_nanochat(path):
        return "nanochat"
    return None


def diagnose(codebase):
    """{"codebase", "kind", "rows", "summary"}; rows are applicability rows (nanochat) or one
    row per variant saying it applies (picochat)."""
    from bug_catalog.targets.nanochat import applicability

    path = Path(codebase).resolve()
    kind = kind_of(path)
    if kind == "nanochat":
        rows = applicability(path)
    elif kind == "picochat":
        rows = [{"bug": r.id, "slug": r.slug, "title": r.title, "variant": v.name, "applies": True,
                 "where": r.file, "function": r.function, "reason": ""}
                for r in sorted(load_catalog().values(), key=lambda r: r.id) for v in r.variants]
    else:
        rows = []
    return {"codebase": str(path), "kind": kind, "rows": rows, "summary": summary(kind, path, rows)}


def summary(kind, path, rows):
    if kind is None:
        return (f"{path} is neither picochat (bugdrill's built-in codebase) nor a nanochat checkout "
                f"(no nanochat/gpt.py, nanochat/dataset.py, scripts/base_train.py, scripts/tok_train.py): bugdrill has no edits for it.")
    bugs = {row["bug"] for row in rows}
    applying = {row["bug"] for row in rows if row["applies"]}
    variants = sum(row["applies"] for row in rows)
    return (f"{path}: {kind}. {len(applying)} of {len(bugs)} catalogue bugs apply "
            f"({variants} of {len(rows)} variants); {len(bugs - applying)} have no home here.")


def table(report):
    """The report as text: applicable variants with their place, then the others with why not."""
    rows = report["rows"]
    lines = [report["summary"]]
    if not rows:
        return lines[0]
    lines += ["", "applies:"]
    lines += [f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['where']} ({r['function']})"
              for r in rows if r["applies"]]
    others = [r for r in rows if not r["applies"]]
    if others:
        lines += ["", "does not apply:"]
        lines += [f"  {r['bug']:3d} {r['slug']:<28} {r['variant']:<26} {r['reason']}" for r in others]
    return "\n".join(lines)
