"""Loading the catalogue: TOML records joined to the registered edits and checks."""

import importlib
import pkgutil
import tomllib
from functools import lru_cache
from pathlib import Path

from bug_catalog import bugs
from bug_catalog.registry import CHECKS, EDITS
from bug_catalog.schema import BugRecord

RECORDS_DIR = Path(__file__).parent / "records"


class UnknownBug(KeyError):
    def __str__(self):
        return f"unknown bug {self.args[0]!r}: see `bugdrill bugs` for the catalogue"


def import_bug_modules():
    for module in pkgutil.iter_modules(bugs.__path__):
        importlib.import_module(f"{bugs.__name__}.{module.name}")


@lru_cache(maxsize=1)
def load_records():
    """All records by id, validated against the schema: what a listing needs. The edits and checks
    they name (which import torch and libcst) are not loaded; load_catalog joins them."""
    records = {}
    for path in sorted(RECORDS_DIR.glob("*.toml")):
        record = BugRecord.model_validate(tomllib.loads(path.read_text()))
        if record.id in records:
            raise ValueError(f"{path.name}: id {record.id} used twice")
        records[record.id] = record
    return records


@lru_cache(maxsize=1)
def load_catalog():
    """All records by id, validated, with every edit and check they name present."""
    import_bug_modules()
    records = load_records()
    for record in records.values():
        missing = [v.edit for v in record.variants if v.edit not in EDITS]
        if record.check not in CHECKS:
            missing.append(record.check)
        if missing:
            raise ValueError(f"record {record.id} ({record.slug}) names no registered edit/check {missing}")
    return records


def get_bug(key):
    """A record by id, alias or slug."""
    catalog = load_catalog()
    for record in catalog.values():
        if str(key) in (str(record.id), record.slug) or (str(key).isdigit() and int(key) in record.aliases):
            return record
    raise UnknownBug(key)
