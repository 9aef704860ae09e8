"""The report a person reads: solve rates per category and difficulty with 95% confidence
intervals, and the false-positive rate on control episodes, from one eval's Inspect logs
(several, when the eval ran in shards: each episode must appear once).

    bugdrill report LOG_OR_DIR [...] [--json]
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from inspect_ai.log import list_eval_logs, read_eval_log

SCORER = "episode_scorer"
Z95 = 1.959964


class ReportError(ValueError):
    """Logs that do not make one report (none found, an episode twice, no bugdrill samples)."""


@dataclass(frozen=True)
class Episode:
    """One scored sample, as the report needs it."""
    log: str
    id: str
    kind: str
    category: str
    difficulty: str
    bugs_per_episode: int
    solved: bool
    credit: float
    false_positive: bool


@dataclass(frozen=True)
class Row:
    group: str  # "category", "difficulty", "all" or "control"
    name: str
    episodes: int
    successes: int  # solved episodes; for controls, false positives
    rate: float
    low: float
    high: float
    mean_credit: float | None


def wilson(successes, n):
    """95% Wilson score interval of a proportion: sound at 0, 1 and small n, where the normal one is not."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_episodes(paths):
    """Every scored bugdrill episode in the logs (files or directories of logs)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += [Path(info.name.removeprefix("file://")) for info in list_eval_logs(str(path))]
        elif path.exists():
            files.append(path)
        else:
            raise ReportError(f"no such log or directory: {path}")
    episodes, seen = [], {}
    for file in sorted(files):
        log = read_eval_log(str(file))
        for sample in log.samples or []:
            score = (sample.scores or {}).get(SCORER)
            if score is None:
                continue
            if sample.id in seen:
                raise ReportError(f"{sample.id} is in both {seen[sample.id]} and {file}: give the logs of one eval")
            seen[sample.id] = file
            meta, verdict = sample.metadata, score.metadata or {}
            episodes.append(Episode(str(file), str(sample.id), meta["kind"], meta["category"], meta["difficulty"],
                                    meta["bugs_per_episode"], bool(verdict.get("solved")),
                                    float(verdict.get("credit", 0.0)), bool(verdict.get("false_positive"))))
    if not episodes:
        raise ReportError("no scored bugdrill episodes in those logs")
    return episodes


def rows(episodes):
    """Rows for all bug episodes, each category, each difficulty, and the controls."""
    bug_episodes = [e for e in episodes if e.bugs_per_episode]
    out = [_row("all", "bug episodes", bug_episodes)] if bug_episodes else []
    for group in ("category", "difficulty"):
        for name in sorted({getattr(e, group) for e in bug_episodes}):
            out.append(_row(group, name, [e for e in bug_episodes if getattr(e, group) == name]))
    controls = [e for e in episodes if not e.bugs_per_episode]
    if controls:
        out.append(_row("control", "false positives", controls, count=lambda e: e.false_positive, credit=False))
    return out


def _row(group, name, episodes, count=lambda e: e.solved, credit=True):
    successes = sum(1 for e in episodes if count(e))
    low, high = wilson(successes, len(episodes))
    mean_credit = sum(e.credit for e in episodes) / len(episodes) if credit else None
    return Row(group, name, len(episodes), successes, successes / len(episodes), low, high, mean_credit)


def render(report_rows):
    lines = [f"{'':<12} {'':<24} {'n':>4} {'k':>4} {'rate':>6}  {'95% CI':<13} {'credit':>6}"]
    for row in report_rows:
        credit = f"{row.mean_credit:6.2f}" if row.mean_credit is not None else f"{'':>6}"
        lines.append(f"{row.group:<12} {row.name:<24} {row.episodes:>4} {row.successes:>4} {row.rate:6.2f}  "
                     f"[{row.low:.2f}, {row.high:.2f}]  {credit}")
    lines.append("k: episodes solved (for controls: false positives, a claimed bug or a change that breaks "
                 "a check or the baseline run); credit: mean partial credit")
    return "\n".join(lines)


def as_json(report_rows):
    return [asdict(row) for row in report_rows]
