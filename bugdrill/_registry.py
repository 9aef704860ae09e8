"""Imported by Inspect AI through the `inspect_ai` entry point: registers bugdrill's tasks."""

from bugdrill.tasks import ml_debugging  # noqa: F401
