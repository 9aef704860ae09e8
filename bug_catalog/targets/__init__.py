"""Codebases other than the built-in one: their own edits and checks of the catalogue's bugs.

Each module here registers its edits and checks in bug_catalog.registry under its own `PREFIX`
(`name/...`), so blind workspaces, the answer key and the check runner work unchanged: an
answer key's bug names its check through `check_name`, whatever the codebase. Importing this
package imports every module in it (they load torch and libcst)."""

import importlib
import pkgutil

TARGETS = {}
for _module in pkgutil.iter_modules(__path__):
    _target = importlib.import_module(f"{__name__}.{_module.name}")
    TARGETS[_target.PREFIX] = _target


def target_of(edit_name):
    """The target module whose edit this is, or None for the built-in codebase."""
    return next((t for prefix, t in TARGETS.items() if edit_name.startswith(prefix)), None)


def check_name(record, bug):
    """The check that judges an answer key's bug entry ({"edit": ..., ...}) of `record`."""
    target = target_of(bug["edit"])
    return target.check_for(record) if target else record.check
