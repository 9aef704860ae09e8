"""Grading a diagnosis: location within three lines of the change (deletions at their position) or
the function that holds it, cause by the record's cause terms."""

from dataclasses import asdict

import pytest

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.workspace import apply_variants, read_codebase
from server import grading, locate


def target(bug_id, variant_number=1):
    record = load_catalog()[bug_id]
    (bug,) = apply_variants(read_codebase(PICOCHAT_DIR), [(record, record.variants[variant_number - 1])])
    bug = asdict(bug)
    text = locate.bugged_text(bug)
    marks = locate.anchors(bug["diff"])
    return grading.Target(bug_id, record.title, record.explanation, bug["file"], tuple(marks),
                          frozenset(locate.enclosing_functions(text, marks)),
                          tuple(name for name, _, _ in locate.functions(text)),
                          tuple(tuple(g) for g in record.cause_terms)), text


def test_every_record_has_cause_terms_that_its_own_explanation_meets():
    for record in load_catalog().values():
        assert 2 <= len(record.cause_terms) <= 3, record.id
        explanation = record.explanation.lower()
        assert all(any(term in explanation for term in group) for group in record.cause_terms), record.id


def test_a_deleted_line_is_found_at_its_position_within_three_lines():
    zero_grad, text = target(1, 1)  # the zero_grad() call is deleted
    before, after = zero_grad.anchors  # the lines on either side of the deletion
    assert after == before + 1
    for line in range(before - 3, after + 4):
        assert grading.location_right(zero_grad, "scripts/base_train.py", line, None), line
    assert not grading.location_right(zero_grad, "scripts/base_train.py", after + 4, None)
    assert not grading.location_right(zero_grad, "scripts/base_train.py", before - 4, None)
    assert not grading.location_right(zero_grad, "picochat/gpt.py", before, None)


@pytest.mark.parametrize("given,right", [("scripts/base_train.py", True), ("./scripts/base_train.py", True),
                                         ("base_train.py", True), ("/home/me/picochat/scripts/base_train.py", True),
                                         ("other/base_train.py", False), ("train.py", False), ("", False)])
def test_the_file_may_be_named_as_the_candidate_sees_it(given, right):
    assert grading.same_file(given, "scripts/base_train.py") is right


def test_the_function_holding_the_change_counts_as_the_location():
    mask, _ = target(4, 1)
    assert "CausalSelfAttention._explicit_attention" in mask.functions
    assert grading.location_right(mask, "picochat/gpt.py", None, "CausalSelfAttention._explicit_attention")
    assert grading.location_right(mask, "picochat/gpt.py", None, "_explicit_attention()")
    assert not grading.location_right(mask, "picochat/gpt.py", None, "forward")  # ambiguous and wrong
    assert not grading.location_right(mask, "picochat/gpt.py", 1, None)


def test_the_cause_needs_a_term_from_every_group():
    zero_grad, _ = target(1, 1)
    assert grading.cause_right(zero_grad, "zero_grad() is never called, so the gradients accumulate")
    assert not grading.cause_right(zero_grad, "the learning rate is too high")
    graded = grading.grade([zero_grad], "scripts/base_train.py", zero_grad.anchors[0], None,
                           "gradients are never cleared between steps")
    assert graded.found and graded.score == 1
    assert "Location and cause" in grading.feedback(graded)
