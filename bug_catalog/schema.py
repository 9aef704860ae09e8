"""The shape of a catalogue record, validated when the catalogue loads."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Category = Literal["training", "training (distributed)", "architecture", "data", "inference", "evaluation"]
Observable = Literal["run", "telemetry", "scenario", "code_review"]
Scenario = Literal["base", "resume", "ddp", "sft", "eval", "generation", "fp16_cuda", "long", "grad_accum", "float32",
                   "small_corpus"]
InterviewType = Literal["code_review", "production_debugging"]
# what sandbox/symptoms.py can observe in a run against its baseline
SymptomClass = Literal[
    "crashed", "timed_out", "memory_limit", "disk_limit", "output_limit", "nonfinite", "diverged", "not_learning",
    "below_entropy_floor", "slower_than_baseline", "better_than_baseline", "train_val_gap", "stopped_early",
    "metrics_differ", "memory_growth", "peak_memory_higher", "throughput_drop", "grad_norm_off", "train_loss_off",
    "lr_schedule_off", "weight_decay_off", "ranks_out_of_sync",
    "degenerate_samples", "new_warnings", "no_visible_effect", "did_not_stop_early", "departs_from_baseline",
]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    edit: str = Field(description="registered edit that injects this variant")
    description: str
    scenario: Scenario | None = Field(default=None, description="the variant's symptom run, if not the record's")
    run_args: list[str] = Field(default=[], description="flags this variant's symptom run adds to the record's")
    shows: list[SymptomClass] = Field(
        default=[], description="symptom classes a run of the record's scenario showed for this variant, measured by "
                                "`bugdrill validate`; empty: nothing to see in a run here (run_note says why)")


class BugRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, le=54)
    aliases: list[int] = []
    slug: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str
    category: Category
    priority: int = Field(ge=1, le=3)
    difficulty: Literal["easy", "medium", "hard"]
    file: str
    function: str
    observable: Observable
    scenario: Scenario
    interview_types: list[InterviewType] = Field(min_length=1)
    codebases: list[str] = ["builtin"]
    symptom: str = Field(description="what a run of this codebase showed, measured, and why")
    measured_with: str = Field(description="the command or check that produced the symptom")
    hints: list[str] = Field(min_length=3, max_length=3)
    explanation: str
    investigation: list[str] = Field(min_length=1, description="what a strong candidate would look at, in order")
    check: str = Field(description="registered behavioural check")
    cause_terms: list[list[str]] = Field(
        default=[], description="grading a diagnosis's cause: the text must contain one term (lowercase substring) "
                                "of every group, e.g. [['zero_grad', 'clear'], ['grad']]")
    run_args: list[str] = Field(default=[], description="flags beyond the scenario's that the symptom run needs")
    run_steps: int | None = Field(default=None, description="optimizer steps of the symptom run (scenario default)")
    run_note: str = Field(default="", description="why some variant shows nothing in a run on a CPU machine")
    variants: list[Variant] = Field(min_length=1)

    @field_validator("cause_terms")
    @classmethod
    def _terms_are_lowercase_groups(cls, groups):
        for group in groups:
            if not group or any(not term.strip() or term != term.lower() for term in group):
                raise ValueError("each cause_terms group needs at least one non-blank lowercase term")
        return groups
