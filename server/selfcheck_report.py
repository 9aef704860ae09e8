"""The self-check's output: its rows as a markdown table, and as the JSON report
(`--json OUT`) with the machine they ran on."""

import time
from dataclasses import asdict
from datetime import datetime, timezone

COLUMNS = ("check", "ran", "seconds", "expected", "shown", "verdict")


def table(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row.check, row.ran, f"{row.seconds:.1f}" if row.seconds else "-", row.expected, row.shown, row.verdict]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def failed(rows):
    """Rows that failed or did not run for lack of time: the plan did not check what it promised.
    Skipped rows (CUDA only, no second GPU, no checkout) are not failures."""
    return [r for r in rows if r.verdict == "fail" or r.verdict.startswith("not run")]


def report(plan, rows):
    import torch

    return {"device": plan.device, "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if plan.device == "cuda" else None,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - plan.started, 1), "passed": not failed(rows),
            "rows": [{**asdict(r), "seconds": round(r.seconds, 1)} for r in rows]}
