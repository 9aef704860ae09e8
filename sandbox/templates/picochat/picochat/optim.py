"""
Optimizer set-up and gradient clipping. Notable features:
- AdamW with two parameter groups: matrices decay, gains and embeddings do not
- weight decay is fixed; only the learning rate follows the schedule
- the schedule is linear warmup, then cosine decay to a floor, as a LambdaLR multiplier
- clipping written out (same contract as torch.nn.utils.clip_grad_norm_) so the global
  norm that the log reports is the one that was clipped against
"""

import math

import torch


def configure_optimizer(model, lr, weight_decay, betas):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        # embeddings are lookup tables, gains are scales: neither should be pulled to zero
        if param.dim() >= 2 and not name.endswith("wte.weight"):
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def lr_multiplier(step, warmup_steps, total_steps, final_fraction):
    """Linear warmup to 1, then cosine decay to final_fraction at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def clip_grad_norm(parameters, max_norm):
    """Scale gradients in place so their global L2 norm is at most max_norm.
    Returns the norm before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = torch.sqrt(sum(g.detach().float().pow(2).sum() for g in grads))
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(clip_coef.to(g.dtype))
    return total_norm
