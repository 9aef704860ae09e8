"""Reading a training script's own log: the figures it printed, as numbers.

picochat's lines are `head | key: value | key: value`; the head says what kind of line it is:

    step 00010/00100 (10.00%) | loss: 2.9 | lr: 3.00e-03 | grad norm: 0.73 | dt: 31ms | ...
    step 00025 | val loss: 2.8 | val bpb: 1.6 | entropy floor bpb: 0.31
    Step 00025 | Validation bpb: 1.6                   (nanochat's, read as "val bpb")
    epoch 0 done | mean train loss: 3.1
    sample 0: 'once upon a time ...'
    summary | steps: 100 | final train loss: 2.38 | ...
    probe test | accuracy: 0.81 | balanced_accuracy: 0.65

Any other script whose lines follow the same `key: value | ...` shape parses the same way;
lines that do not are kept as text only. Nothing here imports the workspace's code.
"""

import ast
import re
from dataclasses import dataclass, field

TRAIN_HEAD = re.compile(r"^step (\d+)/(\d+)")
EVAL_HEAD = re.compile(r"^step (\d+)$", re.IGNORECASE)  # nanochat: "Step 00025 | Validation bpb: 1.9"
EVAL_ALIASES = {"Validation bpb": "val bpb"}
SAMPLE_LINE = re.compile(r"^sample(?: (\d+))?: (.*)$")
NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*(e[-+]?\d+)?|nan|inf)(ms|s|%)?$", re.IGNORECASE)


@dataclass
class ParsedLog:
    train: list[dict] = field(default_factory=list)  # {"step": k, "loss": ..., "lr": ..., ...}
    evals: list[dict] = field(default_factory=list)  # {"step": k, "val loss": ..., ...}
    samples: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    other: dict = field(default_factory=dict)  # other `head | k: v` lines by head, last one wins
    notes: list[str] = field(default_factory=list)  # lines with no figures: early stopping, resumed, ...
    planned_steps: int | None = None
    units: dict = field(default_factory=dict)  # {key: "s" or "%"} of summary and other figures printed with one


def parse_number(text):
    text = text.strip()
    match = NUMBER.match(text)
    if not match:
        return None
    value = float(match.group(1).replace(",", ""))
    return value / 1000 if match.group(3) == "ms" else value


def parse_fields(parts, units=None):
    """{key: number or text} from `key: value` parts; a number's unit (ms read as s) goes into `units`."""
    fields = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if not sep:
            continue
        number = parse_number(value)
        fields[key.strip()] = number if number is not None else value.strip()
        unit = number is not None and NUMBER.match(value.strip()).group(3)
        if unit and units is not None:
            units[key.strip()] = "%" if unit == "%" else "s"
    return fields


def parse_sample(text):
    try:
        value = ast.literal_eval(text)
        return value if isinstance(value, str) else text
    except (ValueError, SyntaxError):
        return text


def parse_line(log, line):
    sample = SAMPLE_LINE.match(line)
    if sample:
        log.samples.append(parse_sample(sample.group(2)))
        return
    head, *parts = [p.strip() for p in line.split(" | ")]
    head = re.sub(r"\s*\(\d+(\.\d+)?%\)$", "", head)  # "step 10/100 (10.00%)" -> "step 10/100"
    if train := TRAIN_HEAD.match(head):
        log.planned_steps = int(train.group(2))
        log.train.append({"step": int(train.group(1)), **parse_fields(parts)})
    elif evaluation := EVAL_HEAD.match(head):
        fields = {EVAL_ALIASES.get(k, k): v for k, v in parse_fields(parts).items()}
        log.evals.append({"step": int(evaluation.group(1)), **fields})
    elif head == "summary":
        log.summary = parse_fields(parts, log.units)
    elif ":" in head and any(isinstance(v, float) for v in parse_fields([head, *parts]).values()):
        # a line of figures with no head of its own: "val bpb: 1.39 | ..."
        log.other["fields"] = {**log.other.get("fields", {}), **parse_fields([head, *parts])}
    elif parts:
        log.other[head] = parse_fields(parts, log.units)
    elif line:
        log.notes.append(line)


def parse_log(text):
    log = ParsedLog()
    for line in text.splitlines():
        line = line.strip()
        if any(ch.isalnum() for ch in line) and not line.startswith("config:"):  # no banners or rules
            parse_line(log, line)
    if log.train and log.train[0]["step"] == 0:
        # nanochat prints "step 00000/00060" after its first optimizer step: read steps as steps done,
        # as picochat and the probe count them
        for record in log.train:
            record["step"] += 1
    return log
