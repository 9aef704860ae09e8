"""The shape of a catalogue record, validated when the catalogue loads."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["training", "training (distributed)", "architecture", "data", "inference", "evaluation"]
Observable = Literal["run", "telemetry", "scenario", "code_review"]
Scenario = Literal["base", "resume", "ddp", "sft", "eval", "generation", "fp16_cuda"]
InterviewType = Literal["code_review", "production_debugging"]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    edit: str = Field(description="registered edit that injects this variant")
    description: str


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
    variants: list[Variant] = Field(min_length=1)
