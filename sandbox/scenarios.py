"""Scenarios: the runs that show the built-in codebase's bugs, as commands.

A scenario is one or more stages run one after another in the same data directory
(PICOCHAT_BASE_DIR), e.g. train then evaluate the checkpoint, or train half-way then resume.
Each catalogue record names the scenario that shows its bug. `{steps}` and `{half}` are
filled in from the requested number of optimizer steps.
"""

from dataclasses import dataclass, field

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
    # float16 autocast with a loss scaler is the CUDA default; on a CPU it runs ~16x slower
    Scenario("fp16_cuda", "pretraining in float16 with a loss scaler (the CUDA default)", (
        Stage(TRAIN, base_args("--dtype=float16", "--num_samples=0")),
    ), 20, max_steps=500),
)}


class ScenarioError(ValueError):
    pass


def get_scenario(name):
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def stage_commands(scenario, steps=None, extra_args=()):
    """[(argv after the python executable, nproc)] with the step count and extra flags filled in.

    Extra flags go to every stage that trains and override the scenario's own (argparse keeps
    the last value of a repeated flag)."""
    steps = scenario.default_steps if steps is None else steps
    if not 1 <= steps <= scenario.max_steps:
        raise ScenarioError(f"steps must be between 1 and {scenario.max_steps} for the {scenario.name} scenario")
    filled = []
    for stage in scenario.stages:
        args = [a.format(steps=steps, half=max(1, steps // 2)) for a in stage.args]
        if stage.script == TRAIN or stage.script == "scripts.chat_sft":
            args += list(extra_args)
        filled.append((["-m", stage.script, *args], stage.nproc))
    return filled
