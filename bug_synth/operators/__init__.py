"""Mutation operators for synthesized bugs: families of small syntax-level edits (libcst), each
finding the sites its mutation applies to, by shape, in functions (and in the statements of a
script), and saying in one sentence what is wrong at each.

    from bug_synth import operators
    for mutant in operators.mutants({"picochat/gpt.py": text}, families=["reduction-axis"]):
        print(mutant.file, mutant.line, mutant.before, "->", mutant.after, mutant.cause)

A family is one class in a module of its theme (axes.py, order.py, ...), registered by the
@family decorator; bug_synth/operators/source.py turns each site into a Mutant the same way for all
(only the statement changes; the comments that narrated it go; the text compiles and differs).
"""

import importlib
from pathlib import PurePosixPath
from typing import Iterable, Iterator

from bug_synth.operators.family import FAMILIES, Family, family
from bug_synth.operators.mutant import Mutant

# each module registers its families as it is imported: this order is the registry's
# (the generic statement and guard removals after the specific ones, so a text both make is credited to the
# specific family; themes added later go at the end, so no family a pool has measured loses a text)
THEMES = ("axes", "residual", "layers", "constants", "eps", "polarity", "indices", "arguments", "autograd", "modes",
          "order", "names", "reduction", "devices", "distributed", "flags", "activations", "losses", "signs",
          "statements", "guards", "extremes", "sizes", "arithmetic", "inplace", "elements",
          "keywords", "unpacking", "terms", "logic", "branches", "subscripts", "fills",
          "stale", "attributes", "replacements")
for _theme in THEMES:
    importlib.import_module(f"{__name__}.{_theme}")

__all__ = ["FAMILIES", "Family", "Mutant", "family", "mutants", "check_families", "is_test_file"]


def check_families(families):
    """The family names to use, in registry order; an unknown name raises ValueError."""
    if families is None:
        return list(FAMILIES)
    wanted = [families] if isinstance(families, str) else list(families)
    unknown = [name for name in wanted if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown mutation family {', '.join(map(repr, unknown))}; "
                         f"known families: {', '.join(FAMILIES)}")
    return [name for name in FAMILIES if name in wanted]


def is_test_file(path):
    """A codebase's own tests (tests/, test_*.py, *_test.py, conftest.py): a bug there is not a
    bug in training."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return (any(part in ("tests", "test") for part in parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


def mutants(files: dict[str, str], families: Iterable[str] | None = None) -> Iterator[Mutant]:
    """Every mutant of every chosen family over {relative path: text} (.py files, tests left
    out): files in sorted order, then families in registry order, then sites in file order. A
    text two families (or two sites) both produce comes once, from the first."""
    chosen = check_families(families)
    for path in sorted(files):
        if not path.endswith(".py") or is_test_file(path):
            continue
        seen = set()
        for name in chosen:
            for mutant in FAMILIES[name].mutants(path, files[path]):
                if mutant.text not in seen:
                    seen.add(mutant.text)
                    yield mutant
