"""Agent evals: bugdrill's episodes as an Inspect AI task, its scorer and report, the reference
agent, and command-line agents run in isolation."""
