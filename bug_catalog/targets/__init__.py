"""Codebases other than the built-in one: where each catalogue bug lives in them, if anywhere.

A target module registers its own edits and checks in bug_catalog.registry under a prefix
(`nanochat/...`), so blind workspaces, the answer key and the check runner work unchanged:
a catalogue pick becomes the target's pick with `variant_for`, and an answer key's bug names
its check through `check_name`, whatever the codebase.
"""

from bug_catalog.targets import nanochat  # noqa: F401  (registers nanochat's edits and checks)

TARGETS = {"nanochat": nanochat}


def target_of(edit_name):
    """The target module whose edit this is, or None for the built-in codebase."""
    prefix = edit_name.split("/", 1)[0] if "/" in edit_name else None
    return TARGETS.get(prefix)


def check_name(record, bug):
    """The check that judges an answer key's bug entry ({"edit": ..., ...}) of `record`."""
    target = target_of(bug["edit"])
    return target.check_for(record) if target else record.check


def symptom_on_codebase(bug):
    """What runs showed on the codebase an answer key's bug entry was injected into, where that is
    not picochat (the catalogue's symptoms were measured there); "" on picochat."""
    target = target_of(bug["edit"])
    return target.symptom_here(bug["id"]) if target else ""
