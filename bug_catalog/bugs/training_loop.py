"""Bugs in the training loop of scripts/base_train.py."""

import math

import libcst.matchers as m
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from bug_catalog import cst
from bug_catalog.registry import check, edit
from bug_catalog.support import train_in_process

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

    pre = register_optimizer_step_pre_hook(before_step)
    post = register_optimizer_step_post_hook(after_step)
    try:
        train_in_process("--num_iterations=3", "--grad_clip=0")
    finally:
        pre.remove()
        post.remove()
    assert len(seen) == 3 and all(seen), f"steps that saw fresh gradients: {seen}"
