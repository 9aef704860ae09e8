"""Codebases other than the built-in one: where each catalogue bug lives in them, if anywhere.

A target module registers its own edits and checks in bug_catalog.registry under a prefix
(`nanochat/...`), so blind workspaces, the answer key and the check runner work unchanged.
"""

from bug_catalog.targets import nanochat  # noqa: F401  (registers nanochat's edits and checks)
