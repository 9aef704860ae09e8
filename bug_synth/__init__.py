"""Synthesized bugs: mutants of a codebase made by syntax-level operators (bug_synth/operators),
kept only when a measured run against the same-seed pristine baseline shows a symptom."""
