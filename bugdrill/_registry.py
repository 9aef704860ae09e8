"""Imported by Inspect AI through the `inspect_ai` entry point: registers bugdrill's task and its
model API (`--model bugdrill/rulebook`, the reference agent played as a model, no network)."""

from bugdrill.tasks import ml_debugging  # noqa: F401
from evals.rulebook_model import RulebookModel  # noqa: F401
