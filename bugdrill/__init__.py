"""The Inspect AI extension namespace: `inspect eval bugdrill/ml_debugging` finds the task here."""
