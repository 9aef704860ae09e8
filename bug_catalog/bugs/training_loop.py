"""Bugs in the training loop of scripts/base_train.py."""

import math

import libcst.matchers as m
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from bug_catalog import cst
from bug_catalog.registry import EDITS, check, edit
from bug_catalog.support import assert_same_gradient, hooked, train_in_process

TRAIN = "scripts/base_train.py"

ZERO_GRAD = m.Call(func=m.Attribute(attr=m.Name("zero_grad")))
OPTIMIZER_STEP = m.Call(func=m.Attribute(value=m.Name("scaler"), attr=m.Name("step")))
BACKWARD = m.Call(func=m.Attribute(attr=m.Name("backward")))


@edit("zero-grad.deleted", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "main", ZERO_GRAD)


@edit("zero-grad.before-step", file=TRAIN)
def _(source):
    return cst.move_statement(source, "main", ZERO_GRAD, before=OPTIMIZER_STEP)


@check("zero-grad")
def _():
    """Every optimizer step must see the gradient of its own batch only: poison the gradients
    after each step; the next step must find them fresh (finite, and not all zero)."""
    seen = []

    def before_step(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        seen.append(all(g is not None and torch.isfinite(g).all() for g in grads)
                    and any(g.abs().sum() > 0 for g in grads))

    def after_step(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.fill_(math.nan)

    with hooked(register_optimizer_step_pre_hook(before_step), register_optimizer_step_post_hook(after_step)):
        train_in_process("--num_iterations=3", "--grad_clip=0")
    assert len(seen) == 3 and all(seen), f"steps that saw fresh gradients: {seen}"


# ---- 2: gradient accumulation not scaled ----------------------------------------------------

LOSS_SCALED = m.Assign(value=m.BinaryOperation(left=m.Name("loss"), operator=m.Divide(),
                                               right=m.Name("grad_accum_steps")))


@edit("grad-accum-unscaled.deleted", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "main", LOSS_SCALED)


@edit("grad-accum-unscaled.log-only", file=TRAIN)
def _(source):
    source = cst.remove_statement(source, "main", LOSS_SCALED)
    detached = m.Call(func=m.Attribute(value=m.Name("loss"), attr=m.Name("detach")))
    return cst.replace_with_code(source, "main", detached, "loss.detach() / grad_accum_steps")


def _step_gradients(*flags):
    """The gradients that the first optimizer step sees, flattened."""
    seen = []

    def before_step(optimizer, args, kwargs):
        if not seen:
            seen.append(torch.cat([p.grad.detach().flatten().clone() for group in optimizer.param_groups
                                   for p in group["params"] if p.grad is not None]))

    with hooked(register_optimizer_step_pre_hook(before_step)):
        train_in_process("--num_iterations=1", "--grad_clip=0", "--dropout=0", *flags)
    return seen[0]


@check("grad-accum-unscaled")
def _():
    """A step over two micro-batches of 16 sequences must apply the same gradient as a step over
    one batch of the same 32 sequences (the sampler's order does not depend on the batch size)."""
    whole = _step_gradients("--device_batch_size=32", "--total_batch_size=2048")
    accumulated = _step_gradients("--device_batch_size=16", "--total_batch_size=2048")
    assert_same_gradient(accumulated, whole)


# ---- 3: model left in eval mode during training ---------------------------------------------

TRAIN_MODE = m.Call(func=m.Attribute(value=m.Name("model"), attr=m.Name("train")))
DIST_ENABLED = m.If(test=m.Attribute(value=m.Name("dist_info"), attr=m.Name("enabled")))


@edit("eval-mode-training.not-restored", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "evaluate", TRAIN_MODE)


@edit("eval-mode-training.restored-only-distributed", file=TRAIN)
def _(source):
    source = cst.remove_statement(source, "evaluate", TRAIN_MODE)

    def restore_inside(node):
        body = node.body.with_changes(body=[*node.body.body, cst.parse_statement("model.train()\n")])
        return node.with_changes(body=body)

    return cst.replace_node(source, "evaluate", DIST_ENABLED, restore_inside)


@check("eval-mode-training")
def _():
    """Every forward pass that builds a graph for backward() must run with every module in
    training mode (dropout active), also after a validation in the middle of the run."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    seen = []

    def before_forward(module, args):
        if torch.is_grad_enabled():
            seen.append((type(module).__name__, module.training))

    with hooked(register_module_forward_pre_hook(before_forward)):
        train_in_process("--num_iterations=3", "--eval_every=2")
    in_eval = sorted({name for name, training in seen if not training})
    assert seen and not in_eval, f"modules in eval mode during training forwards: {in_eval}"


# ---- 13: learning rate not decayed ----------------------------------------------------------

OPTIM = "picochat/optim.py"
SCHEDULER_STEP = m.Call(func=m.Attribute(value=m.Name("scheduler"), attr=m.Name("step")))


@edit("lr-not-decayed.constant-after-warmup", file=OPTIM)
def _(source):
    progress = m.Assign(targets=[m.AssignTarget(target=m.Name("progress"))])
    source = cst.remove_statement(source, "lr_multiplier", progress)
    cosine = m.Return(value=m.BinaryOperation(left=m.Name("final_fraction")))
    source = cst.replace_node(source, "lr_multiplier", cosine,
                              lambda node: node.with_changes(value=cst.parse_expression("1.0")))
    return cst.remove_unused_import(source, "math")


@edit("lr-not-decayed.scheduler-never-stepped", file=TRAIN)
def _(source):
    return cst.remove_statement(source, "main", SCHEDULER_STEP)


def _learning_rates(*flags):
    """The learning rate of the first parameter group at each optimizer step."""
    seen = []
    with hooked(register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))):
        train_in_process(*flags)
    return seen


@check("lr-not-decayed")
def _():
    """Over a 20-step run with 2 warmup steps the learning rate must reach the peak and then
    fall to near the final fraction by the last step."""
    lrs = _learning_rates("--num_iterations=20", "--warmup_steps=2", "--lr=0.001", "--final_lr_frac=0.1")
    assert len(lrs) == 20, f"{len(lrs)} optimizer steps"
    assert max(lrs) >= 0.0009, f"the learning rate never reaches its peak: {lrs}"
    assert lrs[-1] <= 0.0002, f"the learning rate did not decay: {[f'{lr:.2e}' for lr in lrs]}"


# ---- 21: gradient clipping after optimizer.step() -------------------------------------------

CLIP = m.Call(func=m.Name("clip_grad_norm"))


@edit("clip-after-step.after-step", file=TRAIN)
def _(source):
    return cst.move_statement(source, "main", CLIP, after=OPTIMIZER_STEP)


@edit("clip-after-step.end-of-step", file=TRAIN)
def _(source):
    return cst.move_statement(source, "main", CLIP, after=SCHEDULER_STEP)


@check("clip-after-step")
def _():
    """With a clip threshold below every gradient norm of the run, the gradients that each
    optimizer step consumes must have a global norm of at most the threshold."""
    norms = []

    def before_step(optimizer, args, kwargs):
        grads = [p.grad.detach().float() for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    with hooked(register_optimizer_step_pre_hook(before_step)):
        train_in_process("--num_iterations=3", "--grad_clip=0.01")
    assert len(norms) == 3 and max(norms) <= 0.01 * 1.001, f"norms the optimizer stepped with: {norms}"


# ---- 27: scheduler stepped before the optimizer ---------------------------------------------

STEP_LOSS_RESET = m.Assign(targets=[m.AssignTarget(target=m.Name("step_loss"))],
                           value=m.Call(func=m.Attribute(attr=m.Name("zeros"))))


@edit("scheduler-before-optimizer.before-step", file=TRAIN)
def _(source):
    return cst.move_statement(source, "main", SCHEDULER_STEP, before=OPTIMIZER_STEP)


@edit("scheduler-before-optimizer.top-of-loop", file=TRAIN)
def _(source):
    return cst.move_statement(source, "main", SCHEDULER_STEP, before=STEP_LOSS_RESET)


@check("scheduler-before-optimizer")
def _():
    """Optimizer step k (from 0) must use the learning rate the schedule gives for step k: the
    first step uses the first warmup value."""
    from picochat.optim import lr_multiplier

    lrs = _learning_rates("--num_iterations=4", "--warmup_steps=10", "--lr=0.001", "--final_lr_frac=0.1")
    expected = [0.001 * lr_multiplier(k, 10, 4, 0.1) for k in range(4)]
    assert len(lrs) == 4 and all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(lrs, expected)), (
        f"learning rates used: {lrs}, schedule: {expected}")


# ---- 26: global grad norm summed instead of root-sum-square ---------------------------------


@edit("grad-norm-summed.sum-of-norms", file=OPTIM)
def _(source):
    sqrt = m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("sqrt")))
    return cst.replace_with_code(source, "clip_grad_norm", sqrt, "sum(g.detach().float().norm() for g in grads)")


@edit("grad-norm-summed.no-sqrt", file=OPTIM)
def _(source):
    sqrt = m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("sqrt")))
    return cst.replace_node(source, "clip_grad_norm", sqrt, lambda node: node.args[0].value)


@check("grad-norm-summed")
def _():
    """Gradients (3, 0) and (4,) have global norm 5: clip_grad_norm must report 5, leave them
    alone under max_norm 10, and scale them to norm 1 under max_norm 1."""
    from picochat.optim import clip_grad_norm

    def params():
        a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
        a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
        return a, b

    a, b = params()
    norm = float(clip_grad_norm([a, b], 10.0))
    assert math.isclose(norm, 5.0, rel_tol=1e-4), f"reported global norm {norm}, expected 5"
    assert torch.allclose(a.grad, torch.tensor([3.0, 0.0])) and torch.allclose(b.grad, torch.tensor([4.0])), (
        f"gradients changed under max_norm 10: {a.grad.tolist()}, {b.grad.tolist()}")
    a, b = params()
    clip_grad_norm([a, b], 1.0)
    clipped = torch.cat([a.grad, b.grad]).norm().item()
    assert math.isclose(clipped, 1.0, rel_tol=1e-3), f"global norm after clipping to 1: {clipped}"


# ---- 25: warmup schedule applied to weight decay --------------------------------------------


@edit("wd-follows-schedule.lr-schedule", file=TRAIN)
def _(source):
    code = ('optimizer.param_groups[0]["weight_decay"] = args.weight_decay * lr_multiplier(\n'
            '    step, args.warmup_steps, args.num_iterations, args.final_lr_frac\n)\n')
    return cst.insert_statement(source, "main", code, before=OPTIMIZER_STEP)


@edit("wd-follows-schedule.warmup", file=TRAIN)
def _(source):
    code = 'optimizer.param_groups[0]["weight_decay"] = args.weight_decay * min(1.0, (step + 1) / args.warmup_steps)\n'
    return cst.insert_statement(source, "main", code, before=OPTIMIZER_STEP)


@check("wd-follows-schedule")
def _():
    """Weight decay is fixed: every optimizer step must use the configured value on the matrices
    and none on the other group, during warmup and after it."""
    seen = []
    with hooked(register_optimizer_step_pre_hook(
            lambda opt, args, kwargs: seen.append(tuple(group["weight_decay"] for group in opt.param_groups)))):
        train_in_process("--num_iterations=5", "--warmup_steps=3", "--weight_decay=0.1")
    assert len(seen) == 5 and all(max(wds) == 0.1 and sorted(wds)[0] == 0.0 for wds in seen), (
        f"weight decay per group at each step: {seen}")


# ---- 14: validation runs with gradients enabled ---------------------------------------------


@edit("eval-grad-enabled.decorator-removed", file=TRAIN)
def _(source):
    no_grad = m.Decorator(decorator=m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("no_grad"))))

    def strip(node):
        return node.with_changes(decorators=[d for d in node.decorators if not m.matches(d, no_grad)])

    decorated = m.FunctionDef(name=m.Name("evaluate"), decorators=[no_grad])
    return cst.replace_node(source, None, decorated, strip)


@edit("eval-grad-enabled.bare-call", file=TRAIN)
def _(source):
    source = EDITS["eval-grad-enabled.decorator-removed"].apply(source)
    eval_mode = m.Call(func=m.Attribute(value=m.Name("model"), attr=m.Name("eval")))
    return cst.insert_statement(source, "evaluate", "torch.no_grad()\n", after=eval_mode)


@check("eval-grad-enabled")
def _():
    """Validation forwards (the model in eval mode) must run with autograd off, wherever the
    no_grad/inference_mode is placed."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    seen = []

    def before_forward(module, args):
        if type(module).__name__ == "GPT" and not module.training:
            seen.append(torch.is_grad_enabled())

    with hooked(register_module_forward_pre_hook(before_forward)):
        train_in_process("--num_iterations=2", "--eval_every=1", "--eval_batches=2")
    assert seen and not any(seen), f"validation forwards with autograd on: {sum(seen)} of {len(seen)}"
