"""
Checkpoints. Notable features:
- one file holds everything a run needs to continue exactly: weights, the model's
  config, optimizer moments, loss-scaler and schedule state, the step, the best
  validation loss so far, and the dropout generator's state
- written to a temporary file and renamed, so a crash mid-save never leaves half a file
"""

from dataclasses import asdict
from pathlib import Path

import torch

from picochat.gpt import GPT, GPTConfig


def save_checkpoint(path, model, optimizer, scaler, scheduler, step, best_val_loss):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "model_config": asdict(model.config),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "best_val_loss": best_val_loss,
        "rng": torch.get_rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path, model, optimizer, scaler, scheduler):
    """Restore a training run in place; returns (step, best_val_loss)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["step"], state["best_val_loss"]


def load_model(path, device, **overrides):
    """A model rebuilt from a checkpoint's config and weights, for fine-tuning or evaluation."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = GPTConfig(**{**state["model_config"], **overrides})
    model = GPT(config)
    model.load_state_dict(state["model"])
    return model.to(device)
