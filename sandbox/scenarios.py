"""Scenarios: the runs that show the built-in codebase's bugs, as commands.

A scenario is one or more stages run one after another in the same data directory
(PICOCHAT_BASE_DIR), e.g. train then evaluate the checkpoint, or train half-way then resume.
Each catalogue record names the scenario that shows its bug. `{steps}` and `{half}` are
filled in from the requested number of optimizer steps. FLAGS is what a request may add.
"""

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

TRAIN = "scripts.base_train"


@dataclass(frozen=True)
class Stage:
    script: str
    args: tuple[str, ...]
    nproc: int = 1


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    stages: tuple[Stage, ...]
    default_steps: int
    max_steps: int = 2000
    extra: dict = field(default_factory=dict)


def base_args(*more):
    return ("--preset=tiny", "--num_iterations={steps}", *more)


SCENARIOS = {s.name: s for s in (
    Scenario("base", "pretraining from scratch", (Stage(TRAIN, base_args()),), 100),
    Scenario("resume", "pretraining to half-way with a checkpoint, then resumed to the end", (
        Stage(TRAIN, ("--preset=tiny", "--num_iterations={half}", "--num_samples=0")),
        Stage(TRAIN, base_args("--resume=true")),
    ), 100),
    Scenario("ddp", "pretraining on 2 ranks (torchrun, gloo on CPU)", (
        Stage(TRAIN, base_args("--device_batch_size=8", "--dtype=float32", "--dropout=0", "--num_samples=0"),
              nproc=2),
    ), 100, max_steps=500),
    Scenario("sft", "chat fine-tuning with padded batches", (
        Stage("scripts.chat_sft", ("--preset=tiny", "--init_from=scratch", "--num_iterations={steps}")),
    ), 200),
    Scenario("eval", "pretraining, then the evaluation script on the checkpoint", (
        Stage(TRAIN, base_args("--num_samples=0")),
        Stage("scripts.base_eval", ("--preset=tiny",)),
    ), 100),
    Scenario("generation", "pretraining, then samples from the model", (
        Stage(TRAIN, base_args("--num_samples=4")),
    ), 100),
    # What some bugs need to show at all lives in a scenario that several bugs share, never in a
    # recipe of one bug's: an interview's first run is its scenario's defaults, so the flags shown
    # to the candidate do not single out the bug (a catalogue record's run_args/run_steps are what
    # the validation matrix measured, on top of these).
    Scenario("long", "pretraining for 300 steps without early stopping", (
        Stage(TRAIN, base_args("--patience=0")),
    ), 300),
    Scenario("grad_accum", "pretraining with gradient accumulation (2 micro-batches per step)", (
        Stage(TRAIN, base_args("--total_batch_size=2048")),
    ), 100),
    Scenario("float32", "pretraining in float32 with a large validation (64 batches every 100 steps)", (
        Stage(TRAIN, base_args("--dtype=float32", "--eval_batches=64", "--eval_every=100", "--num_samples=0")),
    ), 300),
    Scenario("small_corpus", "pretraining on 200 stories without dropout, long enough to overfit", (
        Stage(TRAIN, base_args("--num_stories=200", "--dropout=0", "--eval_every=20", "--num_samples=0")),
    ), 400),
    # float16 autocast with a loss scaler is the CUDA default; on a CPU it runs ~16x slower
    Scenario("fp16_cuda", "pretraining in float16 with a loss scaler (the CUDA default)", (
        Stage(TRAIN, base_args("--dtype=float16", "--num_samples=0")),
    ), 20, max_steps=500),
)}


class ScenarioError(ValueError):
    pass


# --- flags --------------------------------------------------------------------------------
# Every flag of picochat's scripts (scripts/*.py, their TrainConfig-like dataclasses; a test
# checks this table against their argparse), what values a request may give it, and whether a
# request may set it at all. A baseline runs the pristine code outside the isolation with the
# same flags, so the table is what keeps a request from steering it: sizes near the presets',
# the step count only through `steps` (capped per scenario), no path outside the run, and no
# pickle the run did not write (torch.load in picochat runs code from it).

@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # int, float, bool, str (one of `choices`) or path (relative, inside the run's workspace)
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    refused: str = ""  # why a request may not set it; empty: it may


def _int(name, low, high):
    return Flag(name, "int", low, high)


def _float(name, low, high):
    return Flag(name, "float", low, high)


def _one_of(name, *choices):
    return Flag(name, "str", choices=choices)


def _refused(name, kind, why):
    return Flag(name, kind, refused=why)


FLAGS = {f.name: f for f in (
    _one_of("preset", "tiny", "small"),
    # model
    _int("n_layer", 1, 8),
    _int("n_head", 1, 16),
    _int("n_embd", 8, 512),
    _int("sequence_len", 8, 512),
    _float("dropout", 0.0, 0.9),
    _one_of("attn_impl", "explicit", "sdpa"),
    # data
    _int("num_stories", 50, 20000),
    _int("vocab_size", 64, 4096),
    _int("num_workers", 0, 2),
    _int("num_conversations", 10, 20000),
    _int("num_val_conversations", 1, 2000),
    # optimisation
    _refused("num_iterations", "int", "the number of steps is the request's `steps` (capped per scenario)"),
    _int("device_batch_size", 1, 128),
    _int("total_batch_size", 0, 65536),
    _float("lr", 0.0, 10.0),
    _float("weight_decay", 0.0, 10.0),
    _int("warmup_steps", 0, 2000),
    _float("final_lr_frac", 0.0, 1.0),
    _float("grad_clip", 0.0, 1e6),
    # evaluation, checkpoints, early stopping
    _int("eval_every", 1, 2000),
    _int("eval_batches", 1, 256),
    _int("patience", 0, 100),
    _int("save_every", 0, 2000),
    Flag("checkpoint_dir", "path"),
    _refused("resume", "bool", "a run resumes only from its own checkpoint: use the resume scenario"),
    # a path here would load a pickle the request names (torch.load runs code from it)
    _one_of("init_from", "base", "scratch"),
    _int("num_samples", 0, 20),
    _int("probe_examples", 10, 20000),
    _int("probe_epochs", 1, 100),
    # runtime
    _one_of("device", "auto", "cpu", "cuda", "mps"),
    _one_of("dtype", "auto", "float32", "bfloat16", "float16"),
    _refused("seed", "int", "the seed is the request's `seed`"),
)}


def check_flags(args):
    """Refuse any flag that is not picochat's, that a request may not set, or whose value is out
    of its range; returns {name: value} of the flags, the last of a repeated one winning (as in
    argparse)."""
    values = {}
    for arg in args:
        name, value = split_flag(arg)
        flag = FLAGS.get(name)
        if flag is None:
            raise ScenarioError(f"unknown flag --{name}; flags: {', '.join('--' + n for n in sorted(settable()))}")
        if flag.refused:
            raise ScenarioError(f"--{name} may not be set: {flag.refused}")
        check_value(flag, value)
        values[name] = value
    return values


def settable():
    return [name for name, flag in FLAGS.items() if not flag.refused]


def check_ranged_flags(steps, args, max_steps, accepted, where):
    """Refuse steps past the cap and any flag that is not in `accepted` ({name: (low, high)}) or lies
    outside its range: the whole flag check of a codebase whose flags are numbers (`where` names it)."""
    if not 1 <= steps <= max_steps:
        raise ScenarioError(f"steps must be between 1 and {max_steps} on {where}")
    for arg in args:
        name, value = split_flag(arg)
        if name not in accepted:
            raise ScenarioError(f"--{name} is not accepted on {where}; flags: "
                                + (", ".join("--" + n for n in accepted) or "none"))
        low, high = accepted[name]
        try:
            number = type(low)(value)
        except ValueError:
            raise ScenarioError(f"--{name} takes a number, got {value!r}") from None
        if not low <= number <= high:  # NaN fails this too
            raise ScenarioError(f"--{name} must be between {low:g} and {high:g}, got {value}")


def split_flag(arg):
    if not isinstance(arg, str) or not arg.startswith("--") or "=" not in arg or any(c in arg for c in "\n\0"):
        raise ScenarioError(f"flags must look like --name=value, got {arg!r}")
    name, value = arg[2:].split("=", 1)
    return name, value


def check_value(flag, value):
    if flag.kind == "path":
        check_relative_path(flag.name, value)
    elif flag.kind == "str":
        if value not in flag.choices:
            raise ScenarioError(f"--{flag.name} must be one of {', '.join(flag.choices)}, got {value!r}")
    elif flag.kind in ("int", "float"):
        number = parse_number(flag, value)
        if not flag.low <= number <= flag.high:
            raise ScenarioError(f"--{flag.name} must be between {flag.low:g} and {flag.high:g}, got {value}")
    elif flag.kind == "bool" and value.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise ScenarioError(f"--{flag.name} must be true or false, got {value!r}")


def parse_number(flag, value):
    try:
        number = int(value) if flag.kind == "int" else float(value)
    except ValueError:
        raise ScenarioError(f"--{flag.name} takes {'an integer' if flag.kind == 'int' else 'a number'}, "
                            f"got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ScenarioError(f"--{flag.name} must be a finite number, got {value!r}")
    return number


def check_relative_path(name, value):
    """A path flag names a place inside the run's own workspace (its working directory): relative,
    no `..`. Where it really resolves (symlinks) is checked when the run starts (inside_run)."""
    parts = PurePosixPath(value).parts
    if value and (value.startswith("/") or value.startswith("~") or ".." in parts or "\\" in value):
        raise ScenarioError(f"--{name} must be a path relative to the workspace, without '..', got {value!r}")


def path_flags_inside(args, workspace, data_dir):
    """Refuse a path flag that resolves (symlinks followed) outside `workspace` and `data_dir`."""
    roots = [Path(workspace).resolve(), Path(data_dir).resolve()]
    for arg in args:
        name, value = split_flag(arg)
        flag = FLAGS.get(name)
        if flag is None or flag.kind != "path" or not value:
            continue
        resolved = (roots[0] / value).resolve()
        if not any(resolved == root or root in resolved.parents for root in roots):
            raise ScenarioError(f"--{name}={value} resolves outside the run's workspace")


def effective_steps(argv):
    """The step count a stage's argv really asks for: the last --num_iterations (argparse's rule)."""
    steps = None
    for arg in argv:
        if arg.startswith("--num_iterations="):
            steps = int(arg.split("=", 1)[1])
    return steps


def get_scenario(name):
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def flag_name(arg):
    """`--name` of a `--name=value` flag (the whole argument otherwise)."""
    return arg.split("=", 1)[0]


def stage_commands(scenario, steps=None, extra_args=()):
    """[(argv after the python executable, nproc)] with the step count and extra flags filled in.

    Extra flags go to every stage that trains and take the place of the scenario's own flag of
    the same name, so that each flag appears once in the command a person reads."""
    steps = scenario.default_steps if steps is None else steps
    if not 1 <= steps <= scenario.max_steps:
        raise ScenarioError(f"steps must be between 1 and {scenario.max_steps} for the {scenario.name} scenario")
    filled = []
    for stage in scenario.stages:
        args = [a.format(steps=steps, half=max(1, steps // 2)) for a in stage.args]
        if stage.script == TRAIN or stage.script == "scripts.chat_sft":
            overridden = {flag_name(a) for a in extra_args}
            args = [a for a in args if flag_name(a) not in overridden] + list(extra_args)
        stage_steps = effective_steps(args)
        if stage_steps is not None and not 1 <= stage_steps <= scenario.max_steps:
            raise ScenarioError(f"a stage would run {stage_steps} steps; the {scenario.name} scenario allows "
                                f"1 to {scenario.max_steps}")
        filled.append((["-m", stage.script, *args], stage.nproc))
    return filled
