"""
Pretrain the base model on the story corpus.

    python -m scripts.base_train --preset=tiny
    torchrun --nproc_per_node=2 -m scripts.base_train --preset=tiny

Notable features:
- a fixed global batch in tokens; gradient accumulation makes up whatever the
  per-device batch and the number of ranks do not cover
- linear warmup then cosine decay of the learning rate; constant weight decay
- global-norm gradient clipping before every optimizer step
- bf16 autocast on CPU, fp16 autocast with a loss scaler on CUDA
- validation under no_grad every eval_every steps, in bits per byte beside the
  corpus's exact entropy; early stopping when validation stops improving
- checkpoints (model, optimizer, scaler, schedule, RNG) every save_every steps; --resume
  continues from the latest one exactly where it left off
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from picochat.common import (
    arg, autocast_context, autodetect_device, base_dir, build_on_own_generator, cpu_threads, parse_args, print0,
    seed_everything, setup_distributed, teardown_distributed,
)
from picochat.checkpoint import load_checkpoint, save_checkpoint
from picochat.corpus import bits_per_byte, build_corpus, corpus_path, load_corpus
from picochat.dataloader import infinite_batches, pretraining_loader
from picochat.engine import Engine
from picochat.gpt import GPT, GPTConfig
from picochat.optim import clip_grad_norm, configure_optimizer, lr_multiplier


@dataclass
class TrainConfig:
    # model
    n_layer: int = arg(4, "transformer blocks")
    n_head: int = arg(4, "attention heads")
    n_embd: int = arg(128, "model width")
    sequence_len: int = arg(128, "context length in tokens")
    dropout: float = arg(0.1, "dropout in attention and MLP")
    attn_impl: str = arg("explicit", "attention path: explicit or sdpa")
    # data
    num_stories: int = arg(20000, "stories generated for the corpus (train + val)")
    vocab_size: int = arg(512, "tokenizer vocabulary, special tokens included")
    num_workers: int = arg(0, "DataLoader worker processes")
    # optimisation
    num_iterations: int = arg(1000, "optimizer steps")
    device_batch_size: int = arg(16, "sequences per forward pass per rank")
    total_batch_size: int = arg(0, "tokens per optimizer step, all ranks (0: one forward pass per rank)")
    lr: float = arg(3e-3, "peak learning rate")
    weight_decay: float = arg(0.1, "AdamW weight decay on matrices")
    warmup_steps: int = arg(10, "linear warmup steps")
    final_lr_frac: float = arg(0.1, "learning rate at the end, as a fraction of the peak")
    grad_clip: float = arg(1.0, "max global gradient norm (0: no clipping)")
    # evaluation, checkpoints, early stopping
    eval_every: int = arg(25, "steps between validations")
    eval_batches: int = arg(8, "validation batches per rank")
    patience: int = arg(5, "validations without improvement before stopping (0: never stop early)")
    save_every: int = arg(0, "steps between checkpoints (0: only at the end)")
    checkpoint_dir: str = arg("", "where checkpoints go (default: <base dir>/checkpoints)")
    resume: bool = arg(False, "continue from the latest checkpoint in checkpoint_dir")
    num_samples: int = arg(2, "stories sampled from the model at the end")
    # runtime
    device: str = arg("auto", "cpu, cuda, mps or auto")
    dtype: str = arg("auto", "float32, bfloat16, float16 or auto")
    seed: int = arg(42, "seed for weights, data order and dropout")


def resolve_dtype(name, device):
    if name != "auto":
        return name
    return {"cuda": "float16", "cpu": "bfloat16"}.get(device.type, "float32")


@torch.no_grad()
def evaluate(model, loader, num_batches, token_bytes, autocast, dist_info):
    """Mean validation loss (nats per token) and bits per byte, summed over all ranks."""
    model.eval()
    device = token_bytes.device
    total_nats = torch.zeros((), device=device, dtype=torch.float64)
    total_tokens = torch.zeros((), device=device, dtype=torch.float64)
    total_bytes = torch.zeros((), device=device, dtype=torch.float64)
    for i, (inputs, targets) in enumerate(loader):
        if i == num_batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast:
            nats = model(inputs, targets, loss_reduction="none")
        total_nats += nats.sum()
        total_tokens += targets.numel()
        total_bytes += token_bytes[targets].sum()
    if dist_info.enabled:
        for total in (total_nats, total_tokens, total_bytes):
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
    model.train()
    return (total_nats / total_tokens).item(), bits_per_byte(total_nats.item(), total_bytes.item())


def main():
    args = parse_args(TrainConfig(), __doc__.strip().splitlines()[0])
    device = autodetect_device(args.device)
    dist_info = setup_distributed(device)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    dtype = resolve_dtype(args.dtype, device)
    threads = cpu_threads(device)
    seed_everything(args.seed, dist_info.rank)
    print0(dist_info, f"config: {asdict(args)}")

    # the master builds the corpus; the other ranks must not read it before it is complete
    path = corpus_path(base_dir(), args.num_stories, args.vocab_size, args.seed)
    if dist_info.is_master and not path.exists():
        build_corpus(path, args.num_stories, args.vocab_size, args.seed)
    if dist_info.enabled:
        dist.barrier()
    corpus = load_corpus(path)
    tokenizer = corpus.tokenizer
    token_bytes = corpus.token_bytes.to(device)

    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, sequence_len=args.sequence_len, n_layer=args.n_layer,
        n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, attn_impl=args.attn_impl,
        pad_id=tokenizer.pad_id,
    )
    raw_model = build_on_own_generator(args.seed, lambda: GPT(config)).to(device)
    model = DDP(raw_model) if dist_info.enabled else raw_model

    tokens_per_pass = args.device_batch_size * args.sequence_len * dist_info.world_size
    total_batch_size = args.total_batch_size or tokens_per_pass
    assert total_batch_size % tokens_per_pass == 0, "total_batch_size must be a multiple of one pass"
    grad_accum_steps = total_batch_size // tokens_per_pass
    print0(dist_info, f"device: {device} | cpu threads: {threads} | dtype: {dtype} | ranks: {dist_info.world_size}")
    print0(dist_info, f"parameters: {raw_model.num_params():,} | vocab: {tokenizer.vocab_size}")
    print0(dist_info, f"train tokens: {len(corpus.train_tokens):,} | val tokens: {len(corpus.val_tokens):,}")
    print0(dist_info, f"tokens per step: {total_batch_size:,} => gradient accumulation steps: {grad_accum_steps}")
    print0(dist_info, f"entropy floor of the validation text: {corpus.val_entropy_bpb:.4f} bits per byte")

    optimizer = configure_optimizer(raw_model, args.lr, args.weight_decay, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, args.warmup_steps, args.num_iterations, args.final_lr_frac)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=(dtype == "float16"))
    autocast = autocast_context(device, dtype)

    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else base_dir() / "checkpoints"
    checkpoint_path = checkpoint_dir / "latest.pt"
    start_step, best_val_loss = 0, float("inf")
    if args.resume:
        start_step, best_val_loss = load_checkpoint(checkpoint_path, raw_model, optimizer, scaler, scheduler)
        print0(dist_info, f"resumed from {checkpoint_path} at step {start_step}")

    train_loader = pretraining_loader(
        corpus.train_tokens, args.sequence_len, args.device_batch_size, dist_info, args.seed,
        train=True, num_workers=args.num_workers,
    )
    val_loader = pretraining_loader(
        corpus.val_tokens, args.sequence_len, args.device_batch_size, dist_info, args.seed, train=False
    )
    batches = infinite_batches(train_loader, skip=start_step * grad_accum_steps)

    model.train()
    current_epoch, epoch_loss_sum, epoch_steps = None, 0.0, 0
    evals_without_improvement = 0
    val_loss = val_bpb = float("nan")
    step_loss = torch.tensor(float("nan"))
    step = start_step
    run_start = time.time()
    while True:
        last_step = step == args.num_iterations
        # validate at the first step, every eval_every steps and at the end (not twice on resume)
        if (step % args.eval_every == 0 or last_step) and (step > start_step or start_step == 0):
            val_loss, val_bpb = evaluate(model, val_loader, args.eval_batches, token_bytes, autocast, dist_info)
            print0(
                dist_info,
                f"step {step:05d} | val loss: {val_loss:.4f} | val bpb: {val_bpb:.4f} | "
                f"entropy floor bpb: {corpus.val_entropy_bpb:.4f}",
            )
            if val_loss < best_val_loss:
                best_val_loss, evals_without_improvement = val_loss, 0
            else:
                evals_without_improvement += 1
        stop_early = args.patience > 0 and evals_without_improvement >= args.patience
        periodic_save = args.save_every > 0 and step % args.save_every == 0
        if dist_info.is_master and step > start_step and (last_step or stop_early or periodic_save):
            save_checkpoint(checkpoint_path, raw_model, optimizer, scaler, scheduler, step, best_val_loss)
        if stop_early:
            print0(dist_info, f"early stopping at step {step}: no val improvement in {args.patience} evals")
        if last_step or stop_early:
            break

        t0 = time.time()
        step_loss = torch.zeros((), device=device)
        for _ in range(grad_accum_steps):
            epoch, inputs, targets = next(batches)
            inputs, targets = inputs.to(device), targets.to(device)
            with autocast:
                loss = model(inputs, targets)
            # each backward() adds to .grad, so scale each micro-batch to make the sum a mean
            loss = loss / grad_accum_steps
            step_loss += loss.detach()
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = clip_grad_norm(raw_model.parameters(), args.grad_clip) if args.grad_clip > 0 else float("nan")
        scaler.step(optimizer)
        lr = optimizer.param_groups[0]["lr"]  # for the log: the rate the update above was made with
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if dist_info.enabled:
            # the logged loss is the mean over ranks, like the gradient
            dist.all_reduce(step_loss, op=dist.ReduceOp.SUM)
            step_loss /= dist_info.world_size
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.time() - t0
        step += 1

        if epoch != current_epoch:
            if current_epoch is not None:
                print0(dist_info, f"epoch {current_epoch} done | mean train loss: {epoch_loss_sum / epoch_steps:.4f}")
            current_epoch, epoch_loss_sum, epoch_steps = epoch, 0.0, 0
        epoch_loss_sum += step_loss.item()
        epoch_steps += 1
        print0(
            dist_info,
            f"step {step:05d}/{args.num_iterations:05d} ({100 * step / args.num_iterations:.2f}%) | "
            f"loss: {step_loss.item():.4f} | lr: {lr:.2e} | "
            f"grad norm: {float(grad_norm):.4f} | dt: {dt * 1000:.0f}ms | "
            f"tok/sec: {round(total_batch_size / dt):,} | epoch: {epoch}",
        )

    if dist_info.is_master and args.num_samples > 0:
        engine = Engine(raw_model, tokenizer)
        for i in range(args.num_samples):
            out = engine.generate([tokenizer.bos_id], max_tokens=args.sequence_len - 1, temperature=1.0,
                                  top_k=50, seed=args.seed + i, stop_id=tokenizer.bos_id)
            text = tokenizer.decode([t for t in out if t != tokenizer.bos_id])
            print0(dist_info, f"sample {i}: {text!r}")
    print0(
        dist_info,
        f"summary | steps: {step} | final train loss: {step_loss.item():.4f} | "
        f"val loss: {val_loss:.4f} | best val loss: {best_val_loss:.4f} | val bpb: {val_bpb:.4f} | "
        f"entropy floor bpb: {corpus.val_entropy_bpb:.4f} | time: {time.time() - run_start:.1f}s",
    )
    if dist_info.enabled:
        dist.barrier()
    teardown_distributed(dist_info)


if __name__ == "__main__":
    main()
