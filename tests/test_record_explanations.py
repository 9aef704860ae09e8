"""What a record's explanation says about the code is true of every variant's code: reveal and the
interviewer's grading show it beside the bugged workspace, where a name it tells the reader to use
may have been deleted by the variant. Bug 30's fix once named val_loader, which the train-loader
variant deletes."""

import re

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.workspace import apply_variants, read_codebase

CODE_NAME = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")  # snake_case: how these explanations write code


def bugged_file(record, variant):
    files = read_codebase(PICOCHAT_DIR)
    (bug,) = apply_variants(files, [(record, variant)])
    return files[bug.file]


def test_bug_30s_explanation_names_only_code_each_variant_has_or_says_it_deletes():
    record = load_catalog()[30]
    explanation = " ".join(record.explanation.split())
    names = set(CODE_NAME.findall(explanation))
    for variant in record.variants:
        code = bugged_file(record, variant)
        missing = {name for name in names if not re.search(rf"\b{name}\b", code)}
        own = re.search(rf"The {re.escape(variant.name)} variant [^.]*\.", explanation)
        said_deleted = set(CODE_NAME.findall(own.group(0).partition("deletes")[2])) if own else set()
        assert missing <= said_deleted, (variant.name, missing - said_deleted)
        assert all(not re.search(rf"\b{name}\b", code) for name in said_deleted), variant.name
