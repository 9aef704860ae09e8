"""
Shared plumbing for the scripts. Notable features:
- flat `--name=value` command-line flags generated from a dataclass of defaults
- size presets (tiny for tests, small for a laptop CPU) that flags can override
- device auto-detection (cuda, then mps, then cpu) and the autocast dtype for it
- one CPU thread unless OMP_NUM_THREADS asks for more
- DDP set-up when launched by torchrun (gloo on CPU, nccl on CUDA), plain otherwise
- separate random generators for weights, data order and dropout, so a change that
  draws more random numbers in one place does not reshuffle the others
"""

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist

PRESETS = {
    # tiny: seconds on two CPU cores; small: a few minutes, samples read like the corpus
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, sequence_len=64, device_batch_size=16, num_stories=2000),
    "small": dict(n_layer=4, n_head=4, n_embd=128, sequence_len=128, device_batch_size=16, num_stories=20000),
}


def parse_args(defaults, description):
    """Flags named like the dataclass fields; --preset fills in sizes that flags can still override."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="size preset")
    for field in dataclasses.fields(defaults):
        kind = type(field.default)
        if kind is bool:
            kind = _parse_bool
        parser.add_argument(f"--{field.name}", type=kind, default=None, help=field.metadata.get("help", ""))
    ns = parser.parse_args()
    values = dataclasses.asdict(defaults)
    if ns.preset:
        values.update({k: v for k, v in PRESETS[ns.preset].items() if k in values})
    values.update({k: v for k, v in vars(ns).items() if k in values and v is not None})
    return dataclasses.replace(defaults, **values)


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def arg(default, help):
    return dataclasses.field(default=default, metadata={"help": help})


def autodetect_device(requested="auto"):
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_threads(device):
    """One CPU thread unless OMP_NUM_THREADS asks for more; returns the number in use. torch's
    default, a thread per core, is many times slower when anything else runs on the machine
    (a tiny run on 2 busy cores: 431 s with two threads, 4.7 s with one, the same losses)."""
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def autocast_context(device, dtype_name):
    """bf16/fp16 autocast where asked for; fp32 runs without autocast."""
    if dtype_name == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype_name))


@dataclasses.dataclass
class DistInfo:
    enabled: bool
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_master(self):
        return self.rank == 0


SINGLE_PROCESS = DistInfo(enabled=False, rank=0, local_rank=0, world_size=1)


def setup_distributed(device):
    """Join the process group when launched by torchrun; a single plain process otherwise."""
    if "RANK" not in os.environ:
        return SINGLE_PROCESS
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    info = DistInfo(True, dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def teardown_distributed(info):
    if info.enabled:
        dist.destroy_process_group()


def print0(info, *args, **kwargs):
    if info.is_master:
        print(*args, **kwargs, flush=True)


def seed_everything(seed, rank=0):
    """The global generator drives dropout (it takes no generator argument): offset by rank
    so ranks drop different units. Weights and data order use generators of their own."""
    torch.manual_seed(seed + 1000 * rank)


def build_on_own_generator(seed, build):
    """Run build() (e.g. model construction) under a forked RNG seeded with `seed`, so weight
    init does not depend on, or disturb, the generator that dropout draws from."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def base_dir():
    """Where corpus, tokenizer and checkpoints live: $PICOCHAT_BASE_DIR, else ./.picochat."""
    return Path(os.environ.get("PICOCHAT_BASE_DIR", ".picochat"))
