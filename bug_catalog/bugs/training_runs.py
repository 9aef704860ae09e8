"""Bugs in how training runs are driven: resuming, checkpoints, early stopping, epoch metrics,
the loss scaler, and the distributed set-up of scripts/base_train.py."""

import contextlib
import functools
import math
import io
import re
from pathlib import Path

import libcst as lcst
import libcst.matchers as m
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from bug_catalog import cst
from bug_catalog.registry import EditError, check, edit
from bug_catalog.support import hooked, tiny_model, train_in_process

TRAIN = "scripts/base_train.py"
CHECKPOINT = "picochat/checkpoint.py"
OPTIM = "picochat/optim.py"


def _attr_call(obj, attr):
    return m.Call(func=m.Attribute(value=m.Name(obj), attr=m.Name(attr)))


def _quiet_train(*flags):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_in_process(*flags)
    return out.getvalue()


# --- 23: optimizer state not restored on resume -------------------------------------------

@edit("optimizer-not-restored.load-dropped", file=CHECKPOINT)
def _(source):
    return cst.remove_statement(source, "load_checkpoint", _attr_call("optimizer", "load_state_dict"))


@check("optimizer-not-restored")
def _():
    """Save a checkpoint after a few AdamW steps, load it into a fresh model and optimizer: the
    restored optimizer must hold the same moments and step count as the saved one."""
    import tempfile

    from picochat.checkpoint import load_checkpoint, save_checkpoint
    from picochat.optim import configure_optimizer

    def setup(seed):
        model = tiny_model(seed=seed)
        optimizer = configure_optimizer(model, 1e-3, 0.1, betas=(0.9, 0.95))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        return model, optimizer, scheduler, scaler

    model, optimizer, scheduler, scaler = setup(0)
    x = torch.randint(0, 64, (2, 16))
    for _ in range(3):
        model(x, x).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    path = Path(tempfile.mkdtemp()) / "latest.pt"
    save_checkpoint(path, model, optimizer, scaler, scheduler, 3, 1.0)
    model2, optimizer2, scheduler2, scaler2 = setup(1)
    load_checkpoint(path, model2, optimizer2, scaler2, scheduler2)
    saved = [optimizer.state[p] for g in optimizer.param_groups for p in g["params"]]
    loaded = [optimizer2.state.get(p, {}) for g in optimizer2.param_groups for p in g["params"]]
    for before, after in zip(saved, loaded):
        assert set(after) == set(before), f"optimizer state after loading holds {sorted(after)}, saved {sorted(before)}"
        for key in before:
            assert torch.equal(torch.as_tensor(before[key]), torch.as_tensor(after[key])), f"{key} differs after loading"


# --- 30: early stopping watches the training loss -----------------------------------------

IMPROVED = m.Comparison(left=m.Name("val_loss"), comparisons=[m.ComparisonTarget(m.LessThan(), m.Name("best_val_loss"))])
NEW_BEST = m.Tuple(elements=[m.Element(m.Name("val_loss")), m.Element(m.Integer("0"))])


@edit("early-stop-on-train-loss.step-loss", file=TRAIN)
def _(source):
    source = cst.replace_with_code(source, "main", IMPROVED, "step_loss.item() < best_val_loss")
    return cst.replace_with_code(source, "main", NEW_BEST, "step_loss.item(), 0")


@edit("early-stop-on-train-loss.train-loader", file=TRAIN)
def _(source):
    evaluate_arg = m.Arg(value=m.Name("val_loader"))
    source = cst.replace_node(source, "main", evaluate_arg, lambda node: node.with_changes(value=lcst.Name("train_loader")))
    # a validation loader that nothing reads would give the bug away
    return cst.remove_statement(source, "main", m.Assign(targets=[m.AssignTarget(m.Name("val_loader"))]))


def _count_steps():
    steps = []
    hook = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: steps.append(1))
    return steps, hook


@check("early-stop-on-train-loss")
def _():
    """Give the run a validation set it can only get worse on (random tokens) while the training
    loss falls: early stopping must stop the run after `patience` evaluations."""
    import picochat.corpus as corpus_module

    load_corpus = corpus_module.load_corpus

    def noisy_val(path):
        corpus = load_corpus(path)
        generator = torch.Generator().manual_seed(0)
        corpus.val_tokens = torch.randint(4, corpus.tokenizer.vocab_size, corpus.val_tokens.shape, generator=generator)
        return corpus

    steps, hook = _count_steps()
    corpus_module.load_corpus = noisy_val
    try:
        _quiet_train("--num_iterations=16", "--eval_every=2", "--patience=2", "--eval_batches=2", "--dropout=0")
    finally:
        corpus_module.load_corpus = load_corpus
        hook.remove()
    assert len(steps) <= 8, f"validation loss rose from the first evaluation on, yet the run trained {len(steps)} of 16 steps"


# --- 29: checkpoint saved every step --------------------------------------------------------

PERIODIC = m.Comparison(left=m.BinaryOperation(left=m.Name("step"), operator=m.Modulo()))
SAVE_WHEN = m.If(body=m.IndentedBlock(body=[m.SimpleStatementLine(body=[m.Expr(m.Call(func=m.Name("save_checkpoint")))])]))


@edit("checkpoint-every-step.zero-guard", file=TRAIN)
def _(source):
    return cst.replace_with_code(source, "main", m.BooleanOperation(right=PERIODIC), "step % max(args.save_every, 1) == 0")


@edit("checkpoint-every-step.condition", file=TRAIN)
def _(source):
    source = cst.replace_node(source, "main", SAVE_WHEN,
                              lambda node: node.with_changes(test=node.test.left))
    return cst.remove_statement(source, "main", m.Assign(targets=[m.AssignTarget(m.Name("periodic_save"))]))


@check("checkpoint-every-step")
def _():
    """With the default save_every=0 a run of 5 steps writes one checkpoint, at its end; with
    save_every=2 it writes at steps 2, 4 and the end."""
    import tempfile

    real_save = torch.save
    for save_every, expected in (("0", 1), ("2", 3)):
        directory = Path(tempfile.mkdtemp())
        writes = []

        def counting_save(obj, f, *args, **kwargs):
            if isinstance(f, (str, Path)) and Path(f).parent == directory:
                writes.append(obj.get("step") if isinstance(obj, dict) else None)
            return real_save(obj, f, *args, **kwargs)

        torch.save = counting_save
        try:
            _quiet_train("--num_iterations=5", f"--save_every={save_every}", f"--checkpoint_dir={directory}")
        finally:
            torch.save = real_save
        assert len(writes) == expected, (
            f"--save_every={save_every}: {len(writes)} checkpoint writes over 5 steps (steps {writes}), expected {expected}")


# --- 28: running metrics not reset between epochs -------------------------------------------

EPOCH_RESET = m.Assign(
    targets=[m.AssignTarget(m.Tuple(elements=[m.Element(m.Name("current_epoch")), m.ZeroOrMore()]))],
    value=m.Tuple(elements=[m.Element(m.Name("epoch")), m.ZeroOrMore()]),
)


@edit("epoch-metrics-not-reset.epoch-only", file=TRAIN)
def _(source):
    return cst.replace_node(source, "main", EPOCH_RESET, lambda node: lcst.parse_statement(
        "current_epoch = epoch").body[0])


@edit("epoch-metrics-not-reset.sum-kept", file=TRAIN)
def _(source):
    return cst.replace_node(source, "main", EPOCH_RESET, lambda node: lcst.parse_statement(
        "current_epoch, epoch_steps = epoch, 0").body[0])


STEP_LINE = re.compile(r"^step \d+/\d+ .*?\| loss: ([\d.]+) .*\| epoch: (\d+)$", re.M)
EPOCH_LINE = re.compile(r"^epoch (\d+) done \| mean train loss: ([\d.]+)$", re.M)


@check("epoch-metrics-not-reset")
def _():
    """On a corpus small enough for an epoch every few steps, each 'epoch N done' line must
    report the mean of the step losses logged during epoch N."""
    out = _quiet_train("--num_stories=60", "--num_iterations=7")
    per_epoch = {}
    for loss, epoch in STEP_LINE.findall(out):
        per_epoch.setdefault(int(epoch), []).append(float(loss))
    reported = [(int(epoch), float(mean)) for epoch, mean in EPOCH_LINE.findall(out)]
    assert len(reported) >= 2, f"expected at least two finished epochs in 7 steps, saw {reported}"
    for epoch, mean in reported:
        losses = per_epoch.get(epoch, [])
        assert losses and abs(mean - sum(losses) / len(losses)) < 2e-3, (
            f"epoch {epoch} reported mean train loss {mean}, its steps logged {losses}")


# --- 16: memory leak from accumulating the loss tensor ---------------------------------------

@edit("loss-graph-leak.undetached-sum", file=TRAIN)
def _(source):
    source = cst.replace_node(source, "main", m.Call(func=m.Attribute(value=m.Name("loss"), attr=m.Name("detach"))),
                              lambda node: lcst.Name("loss"))
    epoch_sum_item = m.AugAssign(target=m.Name("epoch_loss_sum"), value=m.Call(func=m.Attribute(attr=m.Name("item"))))
    return cst.replace_node(source, "main", epoch_sum_item, lambda node: node.with_changes(value=node.value.func.value))


def _autograd_nodes_alive():
    """Autograd graph nodes reachable from the tensors alive right now."""
    import gc

    seen, stack = set(), []
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.grad_fn is not None:
            stack.append(obj.grad_fn)
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


@check("loss-graph-leak")
def _():
    """The autograd graph alive at each optimizer step must not grow with the number of steps
    taken: nothing may keep earlier steps' graphs referenced."""
    sizes = []
    with hooked(register_optimizer_step_pre_hook(lambda opt, args, kwargs: sizes.append(_autograd_nodes_alive()))):
        _quiet_train("--num_iterations=8")
    assert len(sizes) == 8 and sizes[-1] <= sizes[1] + 5, f"autograd nodes alive at each step: {sizes}"


# --- 31: parameters left out of the optimizer -------------------------------------------------

@edit("params-not-optimized.no-decay-group-dropped", file=OPTIM)
def _(source):
    no_decay_group = m.Element(m.Dict(elements=[m.DictElement(value=m.Name("no_decay")), m.ZeroOrMore()]))
    return cst.replace_node(source, "configure_optimizer", m.List(elements=[m.ZeroOrMore(), no_decay_group]),
                            lambda node: node.with_changes(elements=[node.elements[0].with_changes(comma=lcst.MaybeSentinel.DEFAULT)]))


@edit("params-not-optimized.elif-gains", file=OPTIM)
def _(source):
    return cst.replace_node(source, "configure_optimizer", m.Else(),
                            lambda node: lcst.If(test=lcst.parse_expression("param.dim() < 2"), body=node.body))


@check("params-not-optimized")
def _():
    """One optimizer step on a tiny model must move every trainable parameter, each handed to
    the optimizer exactly once."""
    from picochat.optim import configure_optimizer

    model = tiny_model()
    names = {id(p): name for name, p in model.named_parameters()}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = configure_optimizer(model, 1e-2, 0.1, betas=(0.9, 0.95))
    handed = [names.get(id(p), "?") for group in optimizer.param_groups for p in group["params"]]
    missing = sorted(set(before) - set(handed))
    assert not missing, f"parameters the optimizer never sees: {missing}"
    x = torch.randint(2, 64, (4, 32), generator=torch.Generator().manual_seed(0))
    model(x, x).backward()
    optimizer.step()
    frozen = [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])]
    assert not frozen, f"parameters unchanged by an optimizer step: {frozen}"


# --- 24: loss scaler never updated --------------------------------------------------------------

SCALER_UPDATE = _attr_call("scaler", "update")
MAKE_SCALER = m.Assign(targets=[m.AssignTarget(m.Name("scaler"))])


@edit("scaler-not-updated.update-dropped", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "main", SCALER_UPDATE)


@edit("scaler-not-updated.fresh-each-step", file=TRAIN)
def _(source):
    start_timer = m.Assign(targets=[m.AssignTarget(m.Name("t0"))])
    statements = m.findall(lcst.parse_module(source), m.SimpleStatementLine(body=[MAKE_SCALER]))
    if len(statements) != 1:
        raise EditError(f"expected one scaler = ... statement, found {len(statements)}")
    code = lcst.Module(body=[]).code_for_node(statements[0]).strip()
    source = cst.remove_statement(source, "main", MAKE_SCALER)
    return cst.insert_statement(source, "main", code, before=start_timer)


@check("scaler-not-updated")
def _():
    """In a float16 run (the only one with the scaler enabled), make the first step's gradients
    overflow: that step must be skipped and the following steps must use a smaller loss scale."""
    from torch.amp import GradScaler

    scales = []
    real_unscale = GradScaler.unscale_

    def unscale_(self, optimizer):
        scales.append(self.get_scale())
        if len(scales) == 1:
            next(p for group in optimizer.param_groups for p in group["params"] if p.grad is not None).grad.fill_(math.inf)
        return real_unscale(self, optimizer)

    GradScaler.unscale_ = unscale_
    try:
        _quiet_train("--num_iterations=3", "--dtype=float16")
    finally:
        GradScaler.unscale_ = real_unscale
    assert len(scales) == 3 and scales[1] < scales[0] and scales[2] <= scales[1], (
        f"loss scale at each step after an overflow at the first: {scales}")


# --- 12: loss not averaged across ranks ---------------------------------------------------------

REDUCE_STEP_LOSS = m.Call(func=m.Attribute(value=m.Name("dist"), attr=m.Name("all_reduce")),
                          args=[m.Arg(m.Name("step_loss")), m.ZeroOrMore()])
DIVIDE_STEP_LOSS = m.AugAssign(target=m.Name("step_loss"), operator=m.DivideAssign())


@edit("loss-not-averaged.rank-zero-only", file=TRAIN)
def _(source):
    reduce_block = m.If() & m.MatchIfTrue(lambda node: bool(m.findall(node, REDUCE_STEP_LOSS)))
    return cst.replace_node(source, "main", reduce_block, lambda node: lcst.RemovalSentinel.REMOVE)


@edit("loss-not-averaged.summed", file=TRAIN)
def _(source):
    source = cst.drop_comments_above(source, "main", REDUCE_STEP_LOSS)  # it calls the logged loss a mean
    return cst.remove_statement(source, "main", DIVIDE_STEP_LOSS)


@edit("loss-not-averaged.divided-not-reduced", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "main", REDUCE_STEP_LOSS)


def _torchrun(*flags, nproc=2):
    """stdout of a 2-rank run (run again after gloo's teardown abort: support.run_ranks)."""
    from bug_catalog.support import run_script

    return run_script("torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                      "-m", "scripts.base_train", *flags, timeout=240)


STEP_LR = re.compile(r"^step (\d+)/\d+ .*?\| loss: ([\d.]+) \| lr: ([\d.e+-]+)", re.M)
# validation plays no part in these checks: one batch of it keeps the runs short
DDP_FLAGS = ["--preset=tiny", "--num_samples=0", "--eval_every=1000", "--eval_batches=1", "--dtype=float32",
             "--dropout=0"]
GLOBAL_BATCH_STEPS = 8


@functools.lru_cache(maxsize=1)
def _one_rank_and_two_ranks():
    """(step, loss, lr) of each logged step of a 1-rank run with 16 sequences per step, and of a
    2-rank run with 8 on each rank: the same global batch. Two checks read them, so a process
    that runs both trains them once."""
    one_rank = _quiet_train(f"--num_iterations={GLOBAL_BATCH_STEPS}", "--device_batch_size=16", "--dropout=0",
                            "--eval_batches=1")
    two_ranks = _torchrun(*DDP_FLAGS, f"--num_iterations={GLOBAL_BATCH_STEPS}", "--device_batch_size=8")
    one_rank, two_ranks = STEP_LR.findall(one_rank), STEP_LR.findall(two_ranks)
    assert len(one_rank) == len(two_ranks) == GLOBAL_BATCH_STEPS, \
        f"logged steps: {len(one_rank)} on 1 rank, {len(two_ranks)} on 2"
    return one_rank, two_ranks


@check("loss-not-averaged")
def _():
    """The loss logged by a 2-rank run must be the loss of the global batch: the same as one rank
    logs for the same global batch (2 x 8 sequences there, 16 sequences here)."""
    one_rank, two_ranks = _one_rank_and_two_ranks()
    pairs = [(float(a[1]), float(b[1])) for a, b in zip(one_rank, two_ranks)]
    assert all(abs(a - b) <= 1e-3 * a for a, b in pairs), f"(1-rank loss, 2-rank logged loss) per step: {pairs}"


# --- 22: learning rate scaled by world size at a fixed global batch --------------------------

OPTIMIZER_LR = m.Arg(value=m.Attribute(value=m.Name("args"), attr=m.Name("lr")), keyword=None)


def _scale_lr(source, code):
    configure = m.Call(func=m.Name("configure_optimizer"), args=[m.ZeroOrMore(), OPTIMIZER_LR, m.ZeroOrMore()])
    return cst.replace_node(source, "main", configure, lambda node: node.with_changes(args=[
        arg.with_changes(value=lcst.parse_expression(code)) if m.matches(arg, OPTIMIZER_LR) else arg
        for arg in node.args]))


@edit("lr-times-world-size.linear", file=TRAIN)
def _(source):
    return _scale_lr(source, "args.lr * dist_info.world_size")


@edit("lr-times-world-size.sqrt", file=TRAIN)
def _(source):
    return _scale_lr(source, "args.lr * dist_info.world_size**0.5")


@check("lr-times-world-size")
def _():
    """With the global batch held fixed (8 sequences on each of 2 ranks against 16 on one), a
    2-rank run must follow the 1-rank run: the same learning rate and loss at every step."""
    one_rank, two_ranks = _one_rank_and_two_ranks()
    lrs = [(a[2], b[2]) for a, b in zip(one_rank, two_ranks)]
    assert all(float(a) == float(b) for a, b in lrs), f"(1-rank lr, 2-rank lr) per step: {lrs}"
    pairs = [(float(a[1]), float(b[1])) for a, b in zip(one_rank, two_ranks)]
    assert all(abs(a - b) <= 1e-3 * a for a, b in pairs), f"(1-rank loss, 2-rank loss) per step: {pairs}"


# --- 32: ranks out of sync: no barrier after the master builds the corpus ----------------------

BUILD_IF = m.If() & m.MatchIfTrue(lambda node: bool(m.findall(node, m.Call(func=m.Name("build_corpus")))))
BARRIER_IF = m.If() & m.MatchIfTrue(lambda node: bool(m.findall(node, _attr_call("dist", "barrier"))))


def _builds_then_waits(block):
    body = list(block.body)
    return any(m.matches(a, BUILD_IF) and m.matches(b, BARRIER_IF) for a, b in zip(body, body[1:]))


@edit("corpus-barrier-missing.deleted", file=TRAIN)
def _(source):
    def drop_barrier(block):
        body = list(block.body)
        index = next(i for i, (a, b) in enumerate(zip(body, body[1:]))
                     if m.matches(a, BUILD_IF) and m.matches(b, BARRIER_IF))
        return block.with_changes(body=body[:index + 1] + body[index + 2:])

    source = cst.replace_node(source, "main", m.IndentedBlock() & m.MatchIfTrue(_builds_then_waits), drop_barrier)
    # the comment above the corpus build says the other ranks wait for it
    return cst.drop_comments_above(source, "main", m.Call(func=m.Name("corpus_path")))


MASTER_DELAY = """
import os, time
if os.environ.get("RANK") == "0":
    import picochat.corpus as corpus
    build = corpus.build_corpus
    def slow_build(*args, **kwargs):
        time.sleep(3)
        return build(*args, **kwargs)
    corpus.build_corpus = slow_build
"""


@check("corpus-barrier-missing")
def _():
    """A 2-rank run in a fresh base directory, with the master 3 s slow to build the corpus, must
    still succeed: the other rank has to wait for the corpus instead of reading a missing one."""
    import os
    import tempfile

    hooks = Path(tempfile.mkdtemp())
    (hooks / "sitecustomize.py").write_text(MASTER_DELAY)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(hooks), os.getcwd()] + ([saved] if saved else []))
    try:
        out = _torchrun_fresh_corpus()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    assert "summary" in out, out[-500:]


def _torchrun_fresh_corpus(attempts=3):
    """stdout of a 2-rank run in a base directory with no corpus yet. A rank reading a corpus that
    is not there fails at once; any other failure (a rank lost to an overloaded machine) is
    retried, so that only the race the check is about decides it."""
    import os
    import tempfile

    saved = os.environ.get("PICOCHAT_BASE_DIR")
    try:
        for attempt in range(attempts):
            os.environ["PICOCHAT_BASE_DIR"] = tempfile.mkdtemp(prefix="corpus-race-", dir=saved)
            try:
                return _torchrun(*DDP_FLAGS, "--num_iterations=2", "--num_stories=300", "--device_batch_size=8")
            except AssertionError as failure:
                if "FileNotFoundError" in str(failure) or attempt == attempts - 1:
                    raise
    finally:
        if saved is None:
            os.environ.pop("PICOCHAT_BASE_DIR", None)
        else:
            os.environ["PICOCHAT_BASE_DIR"] = saved
