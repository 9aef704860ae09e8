"""Nothing but the bug is wrong: a catalogue edit changes behaviour and leaves no trace a reader
or a linter would single out.

For every catalogue variant, applied to the pristine file:
* no NEW unused name: a local assigned in a function and never read there, or a module import
  never read (what pyflakes flags), that the pristine file did read;
* no comment near the change that still narrates the pristine construct. What "narrates" means
  is data kept below, per edit: the phrases a comment must not leave behind.

Unused *parameters* are not counted: pyflakes does not flag them, and where an edit leaves one
(rope-missing.deleted leaves `cos`, `sin`) dropping it would change every caller, not only the bug.
Docstrings are not counted either: they are the function's contract, and a bug that breaks a
contract is what a reviewer is there to find.

With NANOCHAT_DIR set, the nanochat edits are checked the same way on that checkout.
"""

import ast
import difflib
import io
import os
import tokenize
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.registry import EDITS, EditError
from bug_catalog.targets.nanochat import edit_for
from sandbox.codebases.picochat import PICOCHAT_DIR

# how far from a changed line a comment still reads as describing it (the issue says three lines;
# the corpus barrier's reason sits four lines above the barrier, so look a little further)
NEAR = 5

# Per edit, the phrases that narrate the pristine construct: none of them may stay in a comment
# near the change. Every catalogue edit has an entry, empty where nothing nearby narrates it, so
# a new edit has to be read for this before its test can pass.
MUST_NOT_LEAVE = {
    "zero-grad.deleted": (),
    "zero-grad.before-step": (),
    "grad-accum-unscaled.deleted": ("scale each micro-batch", "make the sum a mean"),
    "grad-accum-unscaled.log-only": ("scale each micro-batch", "make the sum a mean"),
    "eval-mode-training.not-restored": (),
    "eval-mode-training.restored-only-distributed": (),
    "causal-mask-diagonal.off-by-one": ("keys up to T_k - T_q + i",),
    "causal-mask-diagonal.diagonal-one": ("keys up to T_k - T_q + i",),
    "causal-mask-diagonal.sdpa-not-causal": (),
    "attention-unscaled.scale-dropped": ("scale",),
    "attention-unscaled.divided-by-head-dim": ("sqrt",),
    "mask-minus-1e9.minus-1e9": ("-inf",),
    "mask-minus-1e9.float32-min": ("-inf",),
    "position-device.arange-no-device": (),
    "position-device.inv-freq-attribute": ("buffer",),
    "unshuffled.sampler": ("shuffle",),
    "unshuffled.same-order-every-epoch": ("set_epoch",),
    "kv-position.assigned": (),
    "kv-position.never-advanced": ("advance",),
    "rope-missing.deleted": ("before rotating", "after RoPE"),
    "rope-missing.queries-only": (),
    "qk-norm-missing.deleted": ("normalise before", "learned gain"),
    "qk-norm-missing.queries-only": (),
    "loss-not-averaged.rank-zero-only": ("mean over ranks",),
    "loss-not-averaged.summed": ("mean over ranks",),
    "loss-not-averaged.divided-not-reduced": ("mean over ranks",),
    "lr-not-decayed.constant-after-warmup": (),
    "lr-not-decayed.scheduler-never-stepped": ("before the scheduler moves it on",),
    "eval-grad-enabled.decorator-removed": (),
    "eval-grad-enabled.bare-call": (),
    "pad-in-loss.collate": ("-1",),
    "pad-in-loss.masked-as-pad": ("-1",),
    "loss-graph-leak.undetached-sum": ("detach",),
    "argmax-dim.time-axis": (),
    "argmax-dim.flattened": (),
    "rmsnorm-no-eps.deleted": ("eps",),
    "rmsnorm-no-eps.outside-rsqrt": ("eps",),
    "clip-after-step.after-step": (),
    "clip-after-step.end-of-step": (),
    "lr-times-world-size.linear": (),
    "lr-times-world-size.sqrt": (),
    "optimizer-not-restored.load-dropped": (),
    "scaler-not-updated.update-dropped": (),
    "scaler-not-updated.fresh-each-step": (),
    "wd-follows-schedule.lr-schedule": (),
    "wd-follows-schedule.warmup": (),
    "grad-norm-summed.sum-of-norms": (),
    "grad-norm-summed.no-sqrt": (),
    "scheduler-before-optimizer.before-step": ("before the scheduler moves it on",),
    "scheduler-before-optimizer.top-of-loop": ("before the scheduler moves it on",),
    "epoch-metrics-not-reset.epoch-only": (),
    "epoch-metrics-not-reset.sum-kept": (),
    "checkpoint-every-step.zero-guard": (),
    "checkpoint-every-step.condition": (),
    "early-stop-on-train-loss.step-loss": (),
    "early-stop-on-train-loss.train-loader": (),
    "params-not-optimized.no-decay-group-dropped": (),
    "params-not-optimized.elif-gains": (),
    "corpus-barrier-missing.deleted": ("must not read it before it is complete",),
    "attn-mask-broadcast.heads-axis": ("over heads and queries",),
    "attn-mask-broadcast.query-axis": ("over heads and queries",),
    "residual-before-projection.inside-attention": (),
    "residual-before-projection.projected-stream": (),
    "post-norm.both-sublayers": (),
    "post-norm.normed-stream": (),
    "mlp-no-dropout.not-applied": (),
    "mlp-no-dropout.identity": (),
    "no-context-check.deleted": ("context",),
    "no-context-check.ignores-cache": (),
    "heads-not-separated.merge-without-transpose": ("(B, n_head, T, head_dim) -> (B, T, C)",),
    "heads-not-separated.split-without-transpose": ("(B, T, C) -> (B, n_head, T, head_dim)",),
    "attention-no-out-proj.returned-unprojected": (),
    "linear-bias.attention": (),
    "linear-bias.mlp": (),
    "stats-before-split.probe-standardisation": ("training split's statistics",),
    "stats-before-split.tokenizer": (),
    "no-padding.default-collate": (),
    "no-padding.first-length": (),
    "special-tokens.ids-overlap-merges": (),
    "special-tokens.not-in-decode-table": ("how decode() shows them",),
    "worker-memory.item-cache": (),
    "train-val-overlap.no-dedup": (),
    "train-val-overlap.train-on-all": (),
    "val-augmented.loader": (),
    "val-augmented.eval-script": (),
    "class-imbalance.unweighted": ("inverse of its frequency",),
    "class-imbalance.weights-by-frequency": ("inverse of its frequency",),
    "targets-unshifted.windows": (),
    "targets-unshifted.chat": (),
    "temperature-zero.no-greedy-branch": ("greedy",),
    "temperature-zero.divided-first": (),
    "top-k.unclamped": (),
    "top-k.clamp-unused": (),
    "accuracy-dim.class-axis-0": (),
    "accuracy-dim.keepdim": (),
    "batchnorm-stats.momentum-zero": (),
    "batchnorm-stats.eval-mode-training": (),
    "probe-loss.mse-on-labels": (),
    "probe-loss.nll-on-logits": (),
    "softmax-before-cross-entropy.inside-loss": (),
    "softmax-before-cross-entropy.model-output": (),
}

# Names an edit may leave unread, and why. The class weights stay in the MSE variant because
# the fix is cross_entropy(..., weight=class_weights): without them a correct fix would train an
# unweighted probe and fail bug 47's check, which verify runs whatever the bug.
# nanochat passes the rotary tables as one argument that forward unpacks into cos, sin: without
# the rotation they go unread, as picochat's cos and sin parameters do (see the module docstring).
MAY_LEAVE_UNUSED = {
    "probe-loss.mse-on-labels": {("train_probe", "class_weights")},
    "nanochat/rope-missing.deleted": {("CausalSelfAttention.forward", "cos"), ("CausalSelfAttention.forward", "sin")},
}

CATALOG = load_catalog()
VARIANTS = [(record, variant) for record in CATALOG.values() for variant in record.variants]
IDS = [f"{record.id}-{variant.name}" for record, variant in VARIANTS]
NANOCHAT_DIR = os.environ.get("NANOCHAT_DIR")


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))


# ----------------------------------------------------------------------------- unused names


def _reads(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound_locals(function):
    """Names a function binds by assignment (its parameters are not Name nodes, so they are out)."""
    return {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}


def unused_names(source):
    """{(where, name)}: locals a function assigns and never reads (nested functions' reads count,
    as closures), and module imports the module never reads."""
    tree = ast.parse(source)
    unused = set()

    def visit(node, path):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where = f"{path}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    unused.update((where, name) for name in _bound_locals(child) - _reads(child))
                visit(child, where + ".")
            else:
                visit(child, path)

    visit(tree, "")
    imported = {(alias.asname or alias.name).split(".")[0]
                for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    unused.update(("import", name) for name in imported - _reads(tree))
    return unused


# ----------------------------------------------------------------------------- comments near the change


def comments_by_line(source):
    """{line number (1-based): comment text}, trailing comments included."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def changed_lines(before, after):
    """Line numbers (1-based) of the bugged file at and around each change; a pure deletion marks the
    lines either side of where it was."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    lines = set()
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            lines.update(range(j1 + 1 - NEAR, max(j2, j1 + 1) + NEAR + 1))
    return lines


def narrating_comments(before, after, phrases):
    near = changed_lines(before, after)
    return [(line, text) for line, text in sorted(comments_by_line(after).items())
            if line in near and any(phrase.lower() in text.lower() for phrase in phrases)]


# ----------------------------------------------------------------------------- the tests


def assert_edit_is_silent(edit, codebase, phrases, may_leave_unused=frozenset()):
    before = (Path(codebase) / edit.file).read_text()
    after = edit.apply(before)
    new_unused = unused_names(after) - unused_names(before) - may_leave_unused
    assert not new_unused, f"{edit.name} leaves names unused in {edit.file}: {sorted(new_unused)}"
    left = narrating_comments(before, after, phrases)
    assert not left, f"{edit.name} leaves comments that describe the pristine code: {left}"


def test_every_catalogue_edit_lists_the_phrases_it_must_not_leave():
    edits = {variant.edit for _, variant in VARIANTS}
    assert sorted(edits - MUST_NOT_LEAVE.keys()) == []
    assert sorted(MUST_NOT_LEAVE.keys() - edits) == []


@pytest.mark.parametrize("record, variant", VARIANTS, ids=IDS)
def test_a_variant_leaves_no_unused_name_and_no_narrating_comment(record, variant):
    assert_edit_is_silent(EDITS[variant.edit], PICOCHAT_DIR, MUST_NOT_LEAVE[variant.edit],
                          MAY_LEAVE_UNUSED.get(variant.edit, frozenset()))


@pytest.mark.skipif(not NANOCHAT_DIR, reason="set NANOCHAT_DIR to a nanochat checkout to run this")
@pytest.mark.parametrize("record, variant", VARIANTS, ids=IDS)
def test_a_nanochat_variant_leaves_no_unused_name(record, variant):
    edit = edit_for(record, variant)
    if edit is None or not (Path(NANOCHAT_DIR) / edit.file).is_file():
        pytest.skip("no nanochat edit for this variant")
    try:
        edit.apply((Path(NANOCHAT_DIR) / edit.file).read_text())
    except EditError as error:
        pytest.skip(f"this checkout has no home for it: {error}")
    # nanochat's comments are its own: only the unused names are checked there
    assert_edit_is_silent(edit, NANOCHAT_DIR, (), MAY_LEAVE_UNUSED.get(edit.name, frozenset()))


def test_the_detectors_see_what_they_look_for():
    """The two detectors find an orphaned local, an orphaned import and a narrating comment."""
    pristine = "import math\n\n\ndef f(x):\n    # scale by root two\n    s = math.sqrt(2)\n    return x * s\n"
    bugged = "import math\n\n\ndef f(x):\n    # scale by root two\n    s = 2\n    return x\n"
    assert unused_names(bugged) - unused_names(pristine) == {("f", "s"), ("import", "math")}
    assert narrating_comments(pristine, bugged, ("root two",)) == [(5, "# scale by root two")]


def test_an_import_still_read_elsewhere_stays_and_an_orphaned_one_goes_with_its_blank_lines():
    from bug_catalog import cst

    still_read = '"""Doc."""\n\nimport math\n\nX = math.pi\n'
    assert cst.remove_unused_import(still_read, "math") == still_read
    orphaned = '"""Doc."""\n\nimport math\nimport torch\n\nX = torch.pi\n'
    assert cst.remove_unused_import(orphaned, "math") == '"""Doc."""\n\nimport torch\n\nX = torch.pi\n'


def test_comments_above_a_statement_go_and_its_blank_lines_and_trailing_comment_stay():
    import libcst.matchers as m

    from bug_catalog import cst

    source = "def f(x):\n    y = x\n\n    # says what the next line does\n    z = y + 1  # keep\n    return z\n"
    dropped = cst.drop_comments_above(source, "f", m.Assign(targets=[m.AssignTarget(m.Name("z"))]))
    assert dropped == "def f(x):\n    y = x\n\n    z = y + 1  # keep\n    return z\n"
