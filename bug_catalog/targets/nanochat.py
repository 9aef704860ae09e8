"""karpathy/nanochat as a target codebase: where each catalogue bug lives in it, if anywhere.

Written against nanochat at 92d63d4 (2026-07): Muon + AdamW in one optimizer, flash attention
with an SDPA fallback, sliding windows, no dropout, no BatchNorm, no gradient clipping. Every
catalogue bug is in exactly one of two tables:

* `NOT_APPLICABLE`: nanochat has no home for the bug, with the reason (read it as data);
* a nanochat edit per variant, registered as `nanochat/<slug>.<variant>` and located by syntax
  like the built-in edits (so it survives reformatting and moved code, and raises EditError when
  the construct is gone), plus a behavioural check `nanochat/<check>` that fails while the bug is
  present. A variant with no nanochat counterpart is in `VARIANT_NOT_APPLICABLE`.

`applicability(path)` tries every edit on a checkout and says, per variant, whether it applies
and where; `variant_for` and `check_for` translate a catalogue pick for `create_workspace` and
`run_checks`. Checks that train run nanochat's own scripts/base_train.py in the check process,
with a tiny model, on shards this module writes (sandbox/codebases/nanochat/runs.py) and TorchDynamo off.
"""

import ast
import difflib
import math
import os
import runpy
import sys
from pathlib import Path

import libcst as cst_
import libcst.matchers as m
import torch

from bug_catalog import cst
from bug_catalog.bugs.architecture import ATTN_RESIDUAL, call, replace_arg, replace_statement, statement_with
from bug_catalog.bugs.training_loop import LOSS_SCALED, ZERO_GRAD
from bug_catalog.catalog import import_bug_modules
from bug_catalog.registry import CHECKS, EDITS, Edit, EditError, edit
from bug_catalog.support import assert_qk_scale_invariant, assert_same_gradient

PREFIX = "nanochat/"
TRAIN = "scripts/base_train.py"
GPT = "nanochat/gpt.py"
FLASH = "nanochat/flash_attention.py"
ENGINE = "nanochat/engine.py"
LOSS_EVAL = "nanochat/loss_eval.py"
LOADER = "nanochat/dataloader.py"
TOKENIZER = "nanochat/tokenizer.py"
CORE_EVAL = "nanochat/core_eval.py"
ATTN = "CausalSelfAttention.forward"
# files whose presence marks a nanochat checkout
MARKERS = ("nanochat/gpt.py", "nanochat/dataset.py", "scripts/base_train.py", "scripts/tok_train.py")

NO_EFFECT = "no dropout and no BatchNorm, so model.train()/eval() change nothing"
NOT_APPLICABLE = {
    3: f"model.train() is restored after evaluation, but {NO_EFFECT}: leaving the model in eval mode is harmless",
    5: "no explicit attention scale: FA3/SDPA apply 1/sqrt(head_dim) inside the kernel (q and k are multiplied by 1.2 "
       "after QK norm, a design choice, not the scale)",
    6: "the attention mask is boolean (flash_attention.py), there is no additive -inf/-1e9 mask",
    8: "no shuffling: the loader streams parquet row groups in order from a dataset shuffled once on disk",
    12: "the logged training loss is rank 0's own by design; there is no reduction of it to break",
    15: "padding exists only in scripts/chat_sft.py, whose data (SmolTalk, MMLU, GSM8K) is downloaded; "
        "not ported: no offline SFT scenario",
    16: "no running sum of the loss: train_loss is the last micro-batch's loss.detach(), logged through an EMA of .item()",
    20: "norm() is F.rms_norm with the default eps: there is no epsilon in the code to drop",
    21: "no gradient clipping",
    22: "the learning rate is scaled by sqrt(total batch / reference batch), never by the world size",
    24: "GradScaler exists only for fp16 compute (NANOCHAT_DTYPE=float16 on CUDA; on a CPU the scaler disables itself); "
        "not ported: its check needs a CUDA fp16 step",
    25: "weight decay follows a schedule on purpose: get_weight_decay() decays Muon's weight decay to zero",
    26: "no gradient-norm code",
    27: "no scheduler object: the lr is set from get_lr_multiplier(step) just before optimizer.step()",
    28: "no per-epoch metrics: the loss is logged as an EMA",
    30: "no early stopping",
    32: "no corpus built by the master rank: shards are downloaded and the tokenizer trained beforehand",
    33: "no padding mask in attention: rows are packed documents, every position is real",
    36: "no dropout anywhere",
    37: "the only length check is against the rotary cache (10x sequence_len); a longer input fails in "
        "apply_rotary_emb anyway, so there is no context-window check to remove",
    40: "Linear.forward calls F.linear without a bias, so bias=True adds an unused parameter, not the redundant "
        "shift next to RMSNorm",
    41: "no statistics over the data: the tokenizer trains on the train shards only and there is no standardisation",
    42: "padding exists only in scripts/chat_sft.py (downloaded data); pretraining packs documents with no padding; "
        "not ported",
    44: "no DataLoader workers: the loader is a generator in the training process",
    45: "the split is by file (the last parquet shard is validation); there is no split function to break",
    46: "no data augmentation",
    47: "no classifier",
    51: "no classification accuracy over a tensor of class scores",
    52: "no BatchNorm",
    53: "no classification probe",
}
# The catalogue's symptoms were measured on picochat. What `bugdrill train --codebase` showed on
# nanochat 92d63d4 (60 CPU steps, depth 2, one thread; README), for the bugs run there so far.
MEASURED = {
    1: "On nanochat (60 CPU steps, depth 2): train loss 15% lower than the baseline's, and the grad norm the "
       "optimizer sees 26.6x the baseline's. Muon orthogonalises each update, so the summed gradient's size is "
       "normalised away and the run trains faster at this scale; the grad norm is the tell.",
    10: "On nanochat (60 CPU steps, depth 2): nothing visible in the loss at this size and length.",
    13: "On nanochat (60 CPU steps, depth 2): the lr departs from the baseline's at step 1.",
}
NOT_MEASURED = ("Not measured on nanochat: the symptom above is picochat's. nanochat's optimizers (Muon and AdamW), "
                "schedule and scale differ, so its run may show the bug differently, or not at this length.")


def symptom_here(bug_id):
    """What runs of this bug showed on nanochat, or that none were made."""
    return MEASURED.get(bug_id, NOT_MEASURED)


VARIANT_NOT_APPLICABLE = {
    (4, "diagonal-one"): "no torch.tril/triu mask: the explicit mask is a comparison of index grids",
    (7, "inv-freq-attribute"): "no inv_freq buffer: cos/sin are precomputed buffers",
    (17, "flattened"): "not ported: forward_model keeps (B, T, V) logits, there is no flattened argmax",
    (48, "chat"): "not ported: the chat loader is in scripts/chat_sft.py, whose data is downloaded",
    (29, "condition"): "not ported: the save condition's modulo term matters only with --save-every set",
    (31, "elif-gains"): "no gains/norm-weight parameters: RMSNorm has no learnable weight",
    (43, "not-in-decode-table"): "tiktoken builds the decode table from the same special_tokens dict",
}


def nanochat_edit(name, file):
    return edit(PREFIX + name, file)


def nanochat_check(name):
    """Register a check that first points the process at nanochat's settings for checks."""
    def register(fn):
        def run():
            use_check_settings()
            return fn()

        run.__doc__ = fn.__doc__
        CHECKS[PREFIX + name] = run
        return fn

    return register


def same_as_catalogue(name, file):
    """The catalogue's own edit applies unchanged to nanochat's file."""
    import_bug_modules()
    EDITS[PREFIX + name] = Edit(PREFIX + name, file, EDITS[name].apply)


# ----------------------------------------------------------------------------- training loop (scripts/base_train.py)

LRM = m.Assign(targets=[m.AssignTarget(target=m.Name("lrm"))])


@nanochat_edit("zero-grad.deleted", TRAIN)
def _(source):
    return cst.remove_statement(source, None, ZERO_GRAD)


@nanochat_edit("zero-grad.before-step", TRAIN)
def _(source):
    return cst.move_statement(source, None, ZERO_GRAD, before=LRM)


@nanochat_edit("grad-accum-unscaled.deleted", TRAIN)
def _(source):
    return cst.remove_statement(source, None, LOSS_SCALED)


@nanochat_edit("grad-accum-unscaled.log-only", TRAIN)
def _(source):
    source = cst.remove_statement(source, None, LOSS_SCALED)
    detached = m.Call(func=m.Attribute(value=m.Name("loss"), attr=m.Name("detach")))
    return cst.replace_with_code(source, None, detached, "loss.detach() / grad_accum_steps")


FINAL_FRACTION_RETURN = m.Return() & m.MatchIfTrue(
    lambda node: bool(m.findall(node, m.Attribute(attr=m.Name("final_lr_frac")))))


@nanochat_edit("lr-not-decayed.constant-after-warmup", TRAIN)
def _(source):
    progress = m.Assign(targets=[m.AssignTarget(target=m.Name("progress"))])
    source = cst.remove_statement(source, "get_lr_multiplier", progress)
    return cst.replace_node(source, "get_lr_multiplier", FINAL_FRACTION_RETURN,
                            lambda node: node.with_changes(value=cst.parse_expression("1.0")))


@nanochat_edit("lr-not-decayed.scheduler-never-stepped", TRAIN)
def _(source):
    return cst.remove_statement(source, None, m.Assign(value=m.BinaryOperation(right=m.Name("lrm"))))


@nanochat_edit("optimizer-not-restored.load-dropped", TRAIN)
def _(source):
    load = m.Call(func=m.Attribute(value=m.Name("optimizer"), attr=m.Name("load_state_dict")))
    return cst.remove_statement(source, None, load)


@nanochat_edit("checkpoint-every-step.zero-guard", TRAIN)
def _(source):
    save_every_positive = m.Comparison(left=m.Attribute(value=m.Name("args"), attr=m.Name("save_every")),
                                       comparisons=[m.ComparisonTarget(operator=m.GreaterThan())])
    return cst.replace_node(source, None, m.BooleanOperation(right=save_every_positive), lambda node: node.left)


# ----------------------------------------------------------------------------- model (nanochat/gpt.py)

ROTARY = call("apply_rotary_emb")
QUERY_NORM = m.Call(func=m.Name("norm"), args=[m.Arg(value=m.Name("q"))])
C_PROJ = m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name("c_proj")))


for slug, construct, queries_only in (("rope-missing", ROTARY, "q = apply_rotary_emb(q, cos, sin)"),
                                      ("qk-norm-missing", QUERY_NORM, "q = norm(q) # QK norm")):
    nanochat_edit(f"{slug}.deleted", GPT)(
        lambda source, construct=construct: cst.remove_statement(source, ATTN, construct))
    nanochat_edit(f"{slug}.queries-only", GPT)(
        lambda source, construct=construct, code=queries_only: replace_statement(source, ATTN, construct, code))


@nanochat_edit("position-device.arange-no-device", GPT)
def _(source):
    positions = m.Call(func=m.Attribute(attr=m.Name("arange")), args=[m.Arg(value=m.Name("seq_len")), m.ZeroOrMore()])
    return cst.replace_node(source, "_precompute_rotary_embeddings", positions, lambda node: node.with_changes(
        args=[a for a in node.args if not (a.keyword and a.keyword.value == "device")]))


@nanochat_edit("kv-position.never-advanced", GPT)
def _(source):
    advancing = m.If(body=m.IndentedBlock(body=[statement_with(call("advance"))]))
    return cst.replace_node(source, ATTN, advancing, lambda node: cst_.RemovalSentinel.REMOVE)


@nanochat_edit("attention-no-out-proj.returned-unprojected", GPT)
def _(source):
    return cst.remove_statement(source, ATTN, C_PROJ)


@nanochat_edit("residual-before-projection.inside-attention", GPT)
def _(source):
    return cst.replace_with_code(source, ATTN, C_PROJ, "self.c_proj(y + x)")


@nanochat_edit("residual-before-projection.projected-stream", GPT)
def _(source):
    source = EDITS[PREFIX + "residual-before-projection.inside-attention"].apply(source)
    return cst.replace_node(source, "Block.forward", ATTN_RESIDUAL, lambda node: node.with_changes(value=node.value.right))


def _unnormed(branch_call):
    """The sublayer call with its first argument norm(x) replaced by x."""
    first = branch_call.args[0].with_changes(value=cst_.Name("x"))
    return branch_call.with_changes(args=[first, *branch_call.args[1:]])


def _post_norm(node):
    """x = x + f(norm(x), ...)  ->  x = norm(x + f(x, ...))"""
    residual = node.value.with_changes(right=_unnormed(node.value.right))
    return node.with_changes(value=cst_.Call(func=cst_.Name("norm"), args=[cst_.Arg(residual)]))


MLP_RESIDUAL = m.Assign(targets=[m.AssignTarget(target=m.Name("x"))],
                        value=m.BinaryOperation(right=m.Call(func=m.Attribute(attr=m.Name("mlp")))))


@nanochat_edit("post-norm.both-sublayers", GPT)
def _(source):
    source = cst.replace_node(source, "Block.forward", ATTN_RESIDUAL, _post_norm)
    return cst.replace_node(source, "Block.forward", MLP_RESIDUAL, _post_norm)


@nanochat_edit("post-norm.normed-stream", GPT)
def _(source):
    def normed_first(line):
        assign = line.body[0]
        branch = assign.value.with_changes(right=_unnormed(assign.value.right))
        stream = cst_.parse_statement("x = norm(x)\n").with_changes(leading_lines=line.leading_lines)
        return cst_.FlattenSentinel([stream, line.with_changes(body=[assign.with_changes(value=branch)],
                                                               leading_lines=[])])

    return cst.replace_node(source, "Block.forward", m.SimpleStatementLine(body=[ATTN_RESIDUAL]), normed_first)


same_as_catalogue("softmax-before-cross-entropy.inside-loss", GPT)


@nanochat_edit("softmax-before-cross-entropy.model-output", GPT)
def _(source):
    return cst.insert_statement(source, "GPT.forward", "logits = F.softmax(logits, dim=-1)\n", after=call("tanh"))


@nanochat_edit("params-not-optimized.no-decay-group-dropped", GPT)
def _(source):
    x0_group = m.Element(value=m.Call(func=m.Name("dict"), args=[
        m.ZeroOrMore(), m.Arg(keyword=m.Name("params"), value=m.Name("x0_params")), m.ZeroOrMore()]))
    return cst.replace_node(source, "setup_optimizer", x0_group, lambda node: cst_.RemovalSentinel.REMOVE)


# ----------------------------------------------------------------------------- attention kernels (flash_attention.py)


@nanochat_edit("causal-mask-diagonal.off-by-one", FLASH)
def _(source):
    causal = m.Comparison(left=m.Name("col_idx"), comparisons=[
        m.ComparisonTarget(operator=m.LessThanEqual(), comparator=m.Name("row_idx"))])
    return cst.replace_with_code(source, "_sdpa_attention", causal, "col_idx <= row_idx + 1")


@nanochat_edit("causal-mask-diagonal.sdpa-not-causal", FLASH)
def _(source):
    causal_sdpa = call("scaled_dot_product_attention") & m.Call(
        args=[m.ZeroOrMore(), m.Arg(keyword=m.Name("is_causal"), value=m.Name("True")), m.ZeroOrMore()])
    return replace_arg(source, "_sdpa_attention", causal_sdpa, "is_causal", "False")


@nanochat_edit("heads-not-separated.merge-without-transpose", FLASH)
def _(source):
    return cst.replace_node(source, "flash_attn_func", m.Return(value=call("transpose")),
                            lambda node: node.with_changes(value=node.value.func.value))


@nanochat_edit("heads-not-separated.split-without-transpose", FLASH)
def _(source):
    for name in ("q", "k", "v"):
        to_heads_first = m.Assign(targets=[m.AssignTarget(target=m.Name(name))], value=call("transpose"))
        source = cst.remove_statement(source, "flash_attn_func", to_heads_first)
    return source


# ----------------------------------------------------------------------------- data, tokenizer, inference, eval


@nanochat_edit("targets-unshifted.windows", LOADER)
def _(source):
    targets = m.Call(func=m.Attribute(value=m.Name("cpu_targets"), attr=m.Name("copy_")))
    inputs = m.Call(func=m.Attribute(value=m.Name("cpu_inputs"), attr=m.Name("copy_")))
    module = cst_.parse_module(source)
    found = m.findall(module, inputs)
    if len(found) != 1:
        raise EditError(f"expected exactly one cpu_inputs.copy_(...), found {len(found)}")
    return cst.replace_node(source, None, targets, lambda node: node.with_changes(args=found[0].args))


@nanochat_edit("special-tokens.ids-overlap-merges", TOKENIZER)
def _(source):
    offset = m.Assign(targets=[m.AssignTarget(target=m.Name("tokens_offset"))])
    return cst.replace_node(source, "train_from_iterator", offset, lambda node: node.with_changes(
        value=cst_.BinaryOperation(node.value, cst_.Subtract(), cst_.Integer("1"))))


same_as_catalogue("temperature-zero.no-greedy-branch", ENGINE)


@nanochat_edit("temperature-zero.divided-first", ENGINE)
def _(source):
    greedy = m.If(test=m.Comparison(left=m.Name("temperature")))
    return _insert_before_compound(source, "sample_next_token", greedy, "logits = logits / temperature\n")


def _insert_before_compound(source, scope, matcher, code):
    """Insert the statement `code` just before the one compound statement (if/for/...) matching."""
    return cst.replace_node(source, scope, matcher, lambda node: cst_.FlattenSentinel([
        cst_.parse_statement(code).with_changes(leading_lines=node.leading_lines), node.with_changes(leading_lines=[])]))


same_as_catalogue("top-k.unclamped", ENGINE)
same_as_catalogue("top-k.clamp-unused", ENGINE)


@nanochat_edit("kv-position.assigned", ENGINE)
def _(source):
    return cst.replace_node(source, "KVCache.advance", m.AugAssign(),
                            lambda node: cst_.Expr(cst.parse_expression("self.cache_seqlens.fill_(num_tokens)")))


@nanochat_edit("eval-grad-enabled.decorator-removed", LOSS_EVAL)
def _(source):
    no_grad = m.Decorator(decorator=m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("no_grad"))))
    decorated = m.FunctionDef(name=m.Name("evaluate_bpb"), decorators=[no_grad])
    return cst.replace_node(source, None, decorated, lambda node: node.with_changes(decorators=[]))


@nanochat_edit("eval-grad-enabled.bare-call", LOSS_EVAL)
def _(source):
    source = EDITS[PREFIX + "eval-grad-enabled.decorator-removed"].apply(source)
    batch_iter = m.Assign(targets=[m.AssignTarget(target=m.Name("batch_iter"))])
    return cst.insert_statement(source, "evaluate_bpb", "torch.no_grad()\n", before=batch_iter)


@nanochat_edit("argmax-dim.time-axis", CORE_EVAL)
def _(source):
    return replace_arg(source, "forward_model", call("argmax"), "dim", "1")


# ----------------------------------------------------------------------------- applicability


def is_nanochat(path):
    path = Path(path)
    return all((path / marker).is_file() for marker in MARKERS)


def edit_name(record, variant):
    return f"{PREFIX}{record.slug}.{variant.name}"


def edit_for(record, variant):
    """The registered nanochat edit of a catalogue variant, or None."""
    return EDITS.get(edit_name(record, variant))


def variant_for(record, variant):
    """The variant as create_workspace should inject it into nanochat (its edit renamed)."""
    if edit_for(record, variant) is None:
        raise EditError(f"bug {record.id} variant {variant.name} has no nanochat edit")
    return variant.model_copy(update={"edit": edit_name(record, variant)})


def applicable_variants(codebase, record):
    """The record's variants whose construct this nanochat checkout has, in catalogue order."""
    rows = applicability(codebase, [record])
    return [variant for variant, row in zip(record.variants, rows) if row["applies"]]


def check_for(record):
    return PREFIX + record.check


def _where(path, before, after):
    """file:line (in the bugged file) and the dotted name of the definition the edit changes."""
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    first = next((op for op in matcher.get_opcodes() if op[0] != "equal"), ("equal", 0, 0, 0, 0))
    line = first[1] + 1  # in the pristine file, to find the definition holding it

    def innermost(nodes, prefix):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if start <= line <= node.end_lineno:
                    return innermost(node.body, f"{prefix}{node.name}.")
        return prefix.rstrip(".") or "<module>"

    return f"{path}:{first[3] + 1}", innermost(ast.parse(before).body, "")


def applicability(codebase, records=None):
    """One row per catalogue variant (of `records`, default all): does it apply to this nanochat
    checkout, and where.

    Each edit is tried on the checkout's text; an EditError (or a missing file) means the
    construct is not there, and the row says so."""
    from bug_catalog.catalog import load_catalog

    codebase = Path(codebase)
    rows = []
    for record in sorted(load_catalog().values() if records is None else records, key=lambda r: r.id):
        for variant in record.variants:
            row = {"bug": record.id, "slug": record.slug, "title": record.title, "variant": variant.name,
                   "applies": False, "where": "", "function": "", "reason": ""}
            rows.append(row)
            edit_ = edit_for(record, variant)
            if record.id in NOT_APPLICABLE:
                row["reason"] = NOT_APPLICABLE[record.id]
            elif edit_ is None:
                row["reason"] = VARIANT_NOT_APPLICABLE[(record.id, variant.name)]
            elif not (codebase / edit_.file).is_file():
                row["reason"] = f"construct not found: no {edit_.file}"
            else:
                before = (codebase / edit_.file).read_text()
                try:
                    after = edit_.apply(before)
                except EditError as error:
                    row["reason"] = f"construct not found in {edit_.file}: {error}"
                    continue
                row["applies"] = True
                row["where"], row["function"] = _where(edit_.file, before, after)
    return rows


def applicable_bug_ids(codebase):
    """Ids of the catalogue bugs with at least one variant that applies to the checkout."""
    return sorted({row["bug"] for row in applicability(codebase) if row["applies"]})


# ----------------------------------------------------------------------------- check helpers


def use_check_settings():
    """Checks run in a child process (cwd = the workspace): data and checkpoints go to a scratch
    NANOCHAT_BASE_DIR (never ~/.cache/nanochat), and TorchDynamo is off so that nanochat's
    torch.compile runs eagerly and global hooks see every step."""
    if not os.environ.get("NANOCHAT_BASE_DIR"):
        import tempfile

        scratch = os.environ.get("PICOCHAT_BASE_DIR") or tempfile.mkdtemp(prefix="bugdrill-nanochat-check-")
        os.environ["NANOCHAT_BASE_DIR"] = os.path.join(scratch, "nanochat")
    os.environ["TORCHDYNAMO_DISABLE"] = "1"
    import torch._dynamo

    torch._dynamo.config.disable = True


def tiny_model(seed=0, n_layer=2, window_pattern="L"):
    """A small GPT built on the CPU with PyTorch's default (random) initialisation: unlike
    init_weights(), no projection starts at zero, so every path shows in the output."""
    from nanochat.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    config = GPTConfig(sequence_len=32, vocab_size=64, n_layer=n_layer, n_head=2, n_kv_head=2, n_embd=32,
                       window_pattern=window_pattern)
    return GPT(config).eval()


def rotary(model, length):
    return model.cos[:, :length], model.sin[:, :length]


def attention_output(attn, model, x):
    return attn(x, None, rotary(model, x.size(1)), (-1, 0), None)


CHECK_TRAIN_FLAGS = ("--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=64", "--device-batch-size=4",
                     "--total-batch-size=256", "--warmup-steps=1", "--eval-every=-1", "--core-metric-every=-1",
                     "--sample-every=-1", "--window-pattern=L", "--run=dummy")


def train_in_process(*flags):
    """Run the workspace's scripts/base_train.py in this process (so global torch hooks see it)
    on a tiny model, after writing shards and training a tokenizer once per process."""
    import gc

    from sandbox.codebases.nanochat.runs import prepare_data

    prepare_data(os.environ["NANOCHAT_BASE_DIR"], Path.cwd(), num_stories=3000, vocab_size=512)
    saved, sys.argv = sys.argv, ["base_train", *CHECK_TRAIN_FLAGS, *flags]
    try:
        runpy.run_module("scripts.base_train", run_name="__main__")
    finally:
        sys.argv = saved
        gc.enable()  # base_train turns the garbage collector off after its first step


def optimizer_hooks(before=None, after=None):
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    return [register_optimizer_step_pre_hook(before) if before else None,
            register_optimizer_step_post_hook(after) if after else None]


def train_with_hooks(flags, before=None, after=None):
    handles = optimizer_hooks(before, after)
    try:
        train_in_process(*flags)
    finally:
        for handle in handles:
            if handle is not None:
                handle.remove()


def all_grads(optimizer):
    return [p.grad for group in optimizer.param_groups for p in group["params"]]


# ----------------------------------------------------------------------------- checks: training loop


@nanochat_check("zero-grad")
def _():
    """Every optimizer step must see the gradient of its own batch only: poison the gradients
    after each step; the next step must find them fresh (finite, and not all zero)."""
    seen = []

    def before(optimizer, args, kwargs):
        grads = all_grads(optimizer)
        seen.append(all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
                    and any(bool(g.abs().sum() > 0) for g in grads))

    def after(optimizer, args, kwargs):
        for g in all_grads(optimizer):
            if g is not None:
                g.fill_(math.nan)

    train_with_hooks(["--num-iterations=3"], before, after)
    assert len(seen) == 3 and all(seen), f"steps that saw fresh gradients: {seen}"


def first_step_gradient(*flags):
    seen = []

    def before(optimizer, args, kwargs):
        if not seen:
            seen.append(torch.cat([g.detach().float().flatten().clone() for g in all_grads(optimizer)
                                   if g is not None]))

    train_with_hooks(["--num-iterations=1", *flags], before)
    return seen[0]


@nanochat_check("grad-accum-unscaled")
def _():
    """A step over two micro-batches of 4 rows must apply the same gradient as a step over one
    batch of the same 8 rows (the loader packs rows one after another, whatever the batch size)."""
    whole = first_step_gradient("--device-batch-size=8", "--total-batch-size=512")
    accumulated = first_step_gradient("--device-batch-size=4", "--total-batch-size=512")
    assert_same_gradient(accumulated, whole)


@nanochat_check("lr-not-decayed")
def _():
    """Over a 20-step run whose second half is warmdown to zero, the learning rate reaches its
    peak and then falls to a tenth of it by the last step."""
    fractions = []

    def before(optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        fractions.append(group["lr"] / group["initial_lr"])

    train_with_hooks(["--num-iterations=20", "--warmup-steps=2", "--warmdown-ratio=0.5", "--final-lr-frac=0.0"],
                     before)
    assert len(fractions) == 20, f"{len(fractions)} optimizer steps"
    assert max(fractions) >= 0.99, f"the learning rate never reaches its peak: {fractions}"
    assert fractions[-1] <= 0.2, f"the learning rate did not decay: {[f'{f:.2f}' for f in fractions]}"


@nanochat_check("optimizer-not-restored")
def _():
    """A run resumed from a checkpoint starts its first step with the optimizer state it saved."""
    sizes = []

    def before(optimizer, args, kwargs):
        if not sizes:
            sizes.append(len(optimizer.state))

    train_in_process("--num-iterations=2", "--model-tag=resume-check")
    train_with_hooks(["--num-iterations=4", "--model-tag=resume-check", "--resume-from-step=2"], before)
    assert sizes and sizes[0] > 0, "the first step after resuming finds an empty optimizer state"


@nanochat_check("checkpoint-every-step")
def _():
    """Without --save-every, a 3-step run saves one checkpoint: at its last step."""
    directory = Path(os.environ["NANOCHAT_BASE_DIR"]) / "base_checkpoints" / "save-check"
    for path in directory.glob("*"):
        path.unlink()
    train_in_process("--num-iterations=3", "--model-tag=save-check")
    saved = sorted(path.name for path in directory.glob("model_*.pt"))
    assert saved == ["model_000003.pt"], f"checkpoints written: {saved}"


@nanochat_check("eval-grad-enabled")
def _():
    """Validation (evaluate_bpb) runs its forwards with autograd off."""
    from nanochat.loss_eval import evaluate_bpb

    model = tiny_model()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(torch.is_grad_enabled()))
    try:
        evaluate_bpb(model, [(ids[:, :-1].clone(), ids[:, 1:].clone())] * 2, 2, torch.ones(64, dtype=torch.int64))
    finally:
        hook.remove()
    assert seen and not any(seen), f"validation forwards with autograd on: {sum(seen)} of {len(seen)}"


# ----------------------------------------------------------------------------- checks: model and attention


def sdpa_attention():
    """flash_attn_func on its SDPA path (the one a CPU takes; FA3 is a compiled kernel)."""
    import nanochat.flash_attention as flash

    flash.USE_FA3 = False
    return flash.flash_attn_func


def qkv(T=8, H=2, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, T, H, D, generator=g) for _ in range(3)]


@nanochat_check("causal-mask-diagonal")
def _():
    """Changing the keys and values of later positions changes no earlier output: full context,
    and a sliding window narrower than the sequence (the explicit-mask path)."""
    attend = sdpa_attention()
    q, k, v = qkv()
    later_k, later_v = k.clone(), v.clone()
    later_k[:, 5:] += 3.0
    later_v[:, 5:] += 3.0
    for window in ((-1, 0), (3, 0)):
        before = attend(q, k, v, causal=True, window_size=window)
        after = attend(q, later_k, later_v, causal=True, window_size=window)
        leak = (before[:, :5] - after[:, :5]).abs().max().item()
        assert leak < 1e-5, f"window {window}: positions 0-4 change by {leak:.3g} when positions 5-7 change"


@nanochat_check("heads-not-separated")
def _():
    """Attention keeps its (B, T, H, D) layout and each head attends with its own q, k, v only."""
    attend = sdpa_attention()
    q, k, v = qkv(T=8, H=4)
    before = attend(q, k, v, causal=True, window_size=(-1, 0))
    assert before.shape == q.shape, f"output shape {tuple(before.shape)}, expected {tuple(q.shape)}"
    for head in (0, 3):
        changed = [t.clone() for t in (q, k, v)]
        for t in changed:
            t[:, :, head] += 3.0
        after = attend(*changed, causal=True, window_size=(-1, 0))
        others = [h for h in range(4) if h != head]
        leak = (before[:, :, others] - after[:, :, others]).abs().max().item()
        assert leak < 1e-5, f"changing head {head} changes the other heads' outputs by {leak:.3g}"


def swapped_positions_effect():
    model = tiny_model()
    attn = model.transformer.h[0].attn
    x = torch.randn(1, 10, model.config.n_embd, generator=torch.Generator().manual_seed(3))
    swapped = x.clone()
    swapped[0, [2, 6]] = x[0, [6, 2]]
    with torch.no_grad():
        return (attention_output(attn, model, x)[0, -1] - attention_output(attn, model, swapped)[0, -1]).abs().max().item()


@nanochat_check("rope-missing")
def _():
    """Attention tells the order of earlier tokens apart: swapping two of them changes the output
    at the last position."""
    diff = swapped_positions_effect()
    assert diff > 1e-4, f"swapping two earlier tokens changes the last output by {diff:.2g}: positions are not encoded"


@nanochat_check("qk-norm-missing")
def _():
    """With queries and keys RMS-normalised, attention does not depend on the scale of the query
    and key projections."""
    model = tiny_model()
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 12, model.config.n_embd, generator=torch.Generator().manual_seed(3))
    assert_qk_scale_invariant(attn, lambda: attention_output(attn, model, x))


@nanochat_check("attention-no-out-proj")
def _():
    """The attention output goes through its output projection: with c_proj zeroed it is zero."""
    model = tiny_model()
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 10, model.config.n_embd, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        attn.c_proj.weight.zero_()
        out = attention_output(attn, model, x).abs().max().item()
    assert out < 1e-6, f"attention with a zero output projection outputs values up to {out:.3g}"


def assert_block_is_pre_norm_residual():
    """Attention mixes values only (zero values: zero output), and a block is x + attn(norm(x))
    then x + mlp(norm(x)): with both branches' projections zeroed it is exactly the identity."""
    model = tiny_model()
    block = model.transformer.h[0]
    x = 3.0 * torch.randn(2, 10, model.config.n_embd, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        values = block.attn.c_v.weight.clone()
        block.attn.c_v.weight.zero_()
        out = attention_output(block.attn, model, x).abs().max().item()
        assert out < 1e-6, f"attention over zero values outputs values up to {out:.3g}"
        block.attn.c_v.weight.copy_(values)
        block.attn.c_proj.weight.zero_()
        block.mlp.c_proj.weight.zero_()
        y = block(x, None, rotary(model, 10), (-1, 0), None)
    err = (y - x).abs().max().item()
    assert err < 1e-5, f"a block whose branches output zero changes the residual stream by {err:.3g}"


@nanochat_check("residual-before-projection")
def _():
    assert_block_is_pre_norm_residual()


@nanochat_check("post-norm")
def _():
    assert_block_is_pre_norm_residual()


class FixedLogits(torch.nn.Module):
    """An lm_head that puts logit 10 on a chosen token at every position, 0 elsewhere."""

    def __init__(self, targets, width):
        super().__init__()
        self.logits = 10.0 * torch.nn.functional.one_hot(targets, width).float()

    def forward(self, x):
        return self.logits.to(x.dtype)


@nanochat_check("softmax-before-cross-entropy")
def _():
    """The loss is the cross-entropy of the logits: when the model puts almost all its
    probability on the targets the loss is near zero."""
    model = tiny_model()
    idx = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    model.lm_head = FixedLogits(targets, model.transformer.wte.weight.size(0))
    with torch.no_grad():
        loss = model(idx, targets).item()
    assert loss < 0.05, f"loss {loss:.3f} on targets the model predicts with near certainty (expected ~0)"


@nanochat_check("params-not-optimized")
def _():
    """Every trainable parameter is in one of the optimizer's groups."""
    model = tiny_model()
    optimizer = model.setup_optimizer()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in optimized]
    assert not missing, f"parameters no optimizer group updates: {missing}"


@nanochat_check("position-device")
def _():
    """Rotary tables are built on the device asked for: initialise the weights on the meta
    device and run a forward there."""
    model = tiny_model()
    model.to_empty(device="meta")
    model.init_weights()
    assert model.cos.device.type == "meta", f"rotary tables on {model.cos.device}, the model on meta"
    logits = model(torch.zeros(2, 8, dtype=torch.long, device="meta"))
    assert logits.device.type == "meta"


@nanochat_check("kv-position")
def _():
    """Logits computed token by token through the KV cache equal those of one full forward pass."""
    from nanochat.engine import KVCache

    model = tiny_model()
    c = model.config
    ids = torch.randint(0, 64, (1, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache(batch_size=1, num_heads=c.n_kv_head, seq_len=c.sequence_len, head_dim=c.n_embd // c.n_head,
                        num_layers=c.n_layer, device=model.get_device(), dtype=model.cos.dtype)
        prompt = model(ids[:, :5], kv_cache=cache)
        assert torch.allclose(prompt, full[:, :5], atol=1e-4), "cached prompt logits differ from the full pass"
        for t in range(5, ids.size(1)):
            gap = (model(ids[:, t:t + 1], kv_cache=cache)[:, -1] - full[:, t]).abs().max().item()
            assert gap < 1e-4, f"cached logits at position {t} differ from the full pass by {gap:.3g}"


# ----------------------------------------------------------------------------- checks: data, tokenizer, sampling, eval


class CharTokenizer:
    """Enough of nanochat's tokenizer for the loader: one token per character, BOS = 0."""

    def get_bos_token_id(self):
        return 0

    def encode(self, texts, prepend=None, num_threads=1):
        return [[prepend] + [1 + ord(ch) % 60 for ch in text] for text in texts]


@nanochat_check("targets-unshifted")
def _():
    """The loader's targets are its inputs shifted by one position."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    import nanochat.dataloader as loader

    directory = Path(tempfile.mkdtemp(prefix="loader-check-"))
    paths = []
    for name, seed in (("shard_00000.parquet", 0), ("shard_00001.parquet", 1)):
        texts = [f"document {seed}-{i}: " + "abcdefghij"[i % 10:] * (1 + i % 4) for i in range(64)]
        pq.write_table(pa.table({"text": texts}), directory / name)
        paths.append(str(directory / name))
    loader.list_parquet_files = lambda *args, **kwargs: paths
    batches = loader.tokenizing_distributed_data_loader_bos_bestfit(CharTokenizer(), 2, 16, "train", device="cpu",
                                                                    buffer_size=8)
    for _ in range(3):
        inputs, targets = next(batches)
        assert torch.equal(inputs[:, 1:], targets[:, :-1]), "targets are not the inputs shifted by one"


@nanochat_check("special-tokens")
def _():
    """Special tokens get ids of their own: each decodes to its name, ordinary text never
    encodes to one, and text round-trips."""
    from nanochat.tokenizer import SPECIAL_TOKENS, RustBPETokenizer

    texts = [f"the cat number {i} sat on the mat and the dog sat on the log" for i in range(200)]
    tokenizer = RustBPETokenizer.train_from_iterator(iter(texts), 256 + len(SPECIAL_TOKENS) + 24)
    special = {tokenizer.encode_special(name): name for name in SPECIAL_TOKENS}
    assert len(special) == len(SPECIAL_TOKENS), "two special tokens share an id"
    for token_id, name in special.items():
        assert tokenizer.decode([token_id]) == name, f"id {token_id} decodes to {tokenizer.decode([token_id])!r}, not {name}"
    ids = tokenizer.encode(texts[7] + " " + texts[123])
    assert not set(ids) & set(special), "ordinary text encodes to a special token's id"
    assert tokenizer.decode(ids) == texts[7] + " " + texts[123], "text does not round-trip"


@nanochat_check("temperature-zero")
def _():
    """Temperature 0 is greedy decoding: the argmax of each row, whatever the signs of the logits."""
    from nanochat.engine import sample_next_token

    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0, 0.0], [-2.0, -0.5, -3.0, -1.0, -4.0], [1.0, 0.2, 0.3, 4.0, 2.0]])
    rng = torch.Generator().manual_seed(0)
    for top_k in (None, 2):
        out = sample_next_token(logits, rng, temperature=0.0, top_k=top_k)
        assert out.view(-1).tolist() == [1, 1, 3], f"greedy (top_k={top_k}) picks {out.view(-1).tolist()}, expected [1, 1, 3]"


@nanochat_check("top-k")
def _():
    """top_k above the vocabulary keeps every token; a small top_k keeps only the k largest."""
    from nanochat.engine import sample_next_token

    rng = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, generator=rng)
    out = sample_next_token(logits, rng, temperature=1.0, top_k=50)
    assert out.shape == (3, 1) and bool(((out >= 0) & (out < 10)).all()), f"bad sample {out.tolist()}"
    top2 = torch.topk(logits, 2, dim=-1).indices
    for _ in range(20):
        out = sample_next_token(logits, rng, temperature=1.0, top_k=2)
        assert bool((out == top2).any(dim=-1).all()), f"top_k=2 sampled {out.view(-1).tolist()} outside {top2.tolist()}"


@nanochat_check("argmax-dim")
def _():
    """The CORE evaluation's predictions are the argmax over the vocabulary at each position."""
    from nanochat.core_eval import forward_model

    model = tiny_model()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    _, predictions = forward_model(model, ids)
    with torch.no_grad():
        expected = model(ids).argmax(dim=-1)
    assert predictions.shape == expected.shape and torch.equal(predictions, expected), (
        f"predictions of shape {tuple(predictions.shape)} are not the per-position argmax {tuple(expected.shape)}")
