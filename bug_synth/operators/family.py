"""The small contract every family of mutations keeps: a name, a theme, a one-line description,
and the sites it finds in a parsed file (bug_synth/operators/source.py turns each site into a
Mutant the same way for every family); and the registry of families by name."""

from typing import Iterator

from bug_synth.operators.mutant import Mutant
from bug_synth.operators.source import parse


class Family:
    """One kind of mutation. A subclass sets the three class attributes and writes sites()."""
    name: str = ""
    theme: str = ""
    description: str = ""

    def sites(self, source):
        """Every Site or Reorder of this family in a parsed file, in file order."""
        raise NotImplementedError

    def mutants(self, path, text) -> Iterator[Mutant]:
        source = parse(path, text)
        if source is None:
            return
        for site in self.sites(source):
            mutant = source.mutant(self.name, site)
            if mutant is not None:
                yield mutant


FAMILIES: dict[str, Family] = {}


def family(cls):
    """Class decorator: register one instance of the family under its name."""
    if not cls.name or cls.name in FAMILIES:
        raise ValueError(f"family name {cls.name!r} is empty or taken")
    FAMILIES[cls.name] = cls()
    return cls
