"""What an operator makes: one mutated file, where it changed, and what is wrong there."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    family: str          # the family's name, e.g. "reduction-axis"
    file: str            # path relative to the codebase root, as given
    line: int            # 1-based line, in the original text, of the node changed
    function: str        # dotted enclosing class/function path ("GPT.forward"), "" at module level
    before: str          # source of the original node (one line if it fits)
    after: str           # source of the mutated node ("" where it was removed)
    text: str            # the whole mutated file
    cause: str           # one sentence naming what is wrong at this site (never the family's name)
    cause_terms: tuple[tuple[str, ...], ...]  # a diagnosis must contain one term of every group
