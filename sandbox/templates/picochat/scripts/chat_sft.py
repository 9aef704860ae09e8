"""
Supervised fine-tuning on chat conversations.

    python -m scripts.chat_sft --preset=tiny

Notable features:
- starts from the base model's latest checkpoint (or from scratch with --init_from=scratch)
- conversations of one to four turns in right-padded batches: the padding token's
  embedding is zero, its positions are masked out of attention and out of the loss
- the loss counts only the tokens the assistant should produce
- validation reports the loss on assistant tokens and exact-match accuracy of greedy
  answers to held-out questions
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from picochat import dataset
from picochat.common import (
    arg, autocast_context, autodetect_device, base_dir, build_on_own_generator, cpu_threads, parse_args,
    seed_everything,
)
from picochat.checkpoint import load_model
from picochat.corpus import build_corpus, corpus_path, load_corpus
from picochat.dataloader import chat_loader
from picochat.engine import Engine
from picochat.gpt import GPT, GPTConfig
from picochat.optim import clip_grad_norm, configure_optimizer


@dataclass
class SFTConfig:
    init_from: str = arg("base", "base (latest base checkpoint), scratch, or a checkpoint path")
    n_layer: int = arg(4, "transformer blocks (from scratch only)")
    n_head: int = arg(4, "attention heads (from scratch only)")
    n_embd: int = arg(128, "model width (from scratch only)")
    sequence_len: int = arg(128, "context length in tokens")
    dropout: float = arg(0.0, "dropout during fine-tuning")
    num_stories: int = arg(20000, "size of the pretraining corpus whose tokenizer is used")
    vocab_size: int = arg(512, "tokenizer vocabulary")
    num_conversations: int = arg(4000, "training conversations")
    num_val_conversations: int = arg(200, "held-out conversations")
    num_iterations: int = arg(200, "optimizer steps")
    device_batch_size: int = arg(16, "conversations per batch")
    lr: float = arg(1e-3, "learning rate")
    weight_decay: float = arg(0.0, "AdamW weight decay on matrices")
    grad_clip: float = arg(1.0, "max global gradient norm (0: no clipping)")
    eval_every: int = arg(50, "steps between validations")
    num_workers: int = arg(0, "DataLoader worker processes")
    device: str = arg("auto", "cpu, cuda, mps or auto")
    dtype: str = arg("float32", "float32 or bfloat16")
    seed: int = arg(42, "seed for weights, data order and dropout")


@torch.no_grad()
def evaluate(model, loader, device):
    """Mean loss per assistant token over the whole held-out set."""
    model.eval()
    total_nats, total_tokens = 0.0, 0
    for inputs, targets, attn_mask in loader:
        inputs, targets, attn_mask = inputs.to(device), targets.to(device), attn_mask.to(device)
        nats = model(inputs, targets, attn_mask=attn_mask, loss_reduction="sum")
        total_nats += nats.item()
        total_tokens += (targets != -1).sum().item()
    model.train()
    return total_nats / max(total_tokens, 1)


def answer_accuracy(model, tokenizer, conversations, max_tokens=32):
    """Fraction of held-out single-question conversations answered exactly, greedily."""
    engine = Engine(model, tokenizer)
    end_id = tokenizer.special_id("<|assistant_end|>")
    correct = 0
    for conversation in conversations:
        prompt, _ = tokenizer.render_conversation(conversation[:1])
        prompt = prompt + [tokenizer.special_id("<|assistant_start|>")]
        answer = engine.generate(prompt, max_tokens, temperature=0.0, stop_id=end_id)
        correct += tokenizer.decode([t for t in answer if t != end_id]) == conversation[1]["content"]
    model.train()
    return correct / max(len(conversations), 1)


def build_model(args, tokenizer, device):
    if args.init_from == "scratch":
        config = GPTConfig(
            vocab_size=tokenizer.vocab_size, sequence_len=args.sequence_len, n_layer=args.n_layer,
            n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, pad_id=tokenizer.pad_id,
        )
        return build_on_own_generator(args.seed, lambda: GPT(config)).to(device)
    path = base_dir() / "checkpoints" / "latest.pt" if args.init_from == "base" else Path(args.init_from)
    if not path.exists():
        raise SystemExit(f"no checkpoint at {path}: run scripts.base_train first, or pass --init_from=scratch")
    return load_model(path, device, dropout=args.dropout)


def main():
    args = parse_args(SFTConfig(), __doc__.strip().splitlines()[0])
    device = autodetect_device(args.device)
    threads = cpu_threads(device)
    seed_everything(args.seed)
    print(f"config: {asdict(args)}", flush=True)
    print(f"device: {device} | cpu threads: {threads}", flush=True)
    path = corpus_path(base_dir(), args.num_stories, args.vocab_size, args.seed)
    if not path.exists():
        build_corpus(path, args.num_stories, args.vocab_size, args.seed)
    tokenizer = load_corpus(path).tokenizer
    model = build_model(args, tokenizer, device)
    seq_len = model.config.sequence_len

    train_chats = dataset.generate_chats(args.num_conversations, args.seed)
    val_chats = dataset.generate_chats(args.num_val_conversations, args.seed + 1)
    train_loader = chat_loader(train_chats, tokenizer, seq_len, args.device_batch_size, args.seed,
                               shuffle=True, num_workers=args.num_workers)
    val_loader = chat_loader(val_chats, tokenizer, seq_len, args.device_batch_size, args.seed, shuffle=False)
    single_questions = [c[:2] for c in val_chats[:50]]

    optimizer = configure_optimizer(model, args.lr, args.weight_decay, betas=(0.9, 0.95))
    autocast = autocast_context(device, args.dtype)
    model.train()
    step = 0
    while step < args.num_iterations:
        for inputs, targets, attn_mask in train_loader:
            inputs, targets, attn_mask = inputs.to(device), targets.to(device), attn_mask.to(device)
            with autocast:
                loss = model(inputs, targets, attn_mask=attn_mask)
            loss.backward()
            grad_norm = clip_grad_norm(model.parameters(), args.grad_clip) if args.grad_clip > 0 else float("nan")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            padding = 1.0 - attn_mask.float().mean().item()
            print(f"step {step:05d}/{args.num_iterations:05d} | loss: {loss.item():.4f} | "
                  f"grad norm: {float(grad_norm):.4f} | padding: {100 * padding:.0f}%", flush=True)
            if step % args.eval_every == 0 or step == args.num_iterations:
                val_loss = evaluate(model, val_loader, device)
                accuracy = answer_accuracy(model, tokenizer, single_questions)
                print(f"step {step:05d} | val loss (assistant tokens): {val_loss:.4f} | "
                      f"answer accuracy: {accuracy:.3f}", flush=True)
            if step == args.num_iterations:
                break
    print(f"summary | steps: {step} | final train loss: {loss.item():.4f} | "
          f"val loss: {val_loss:.4f} | answer accuracy: {accuracy:.3f}", flush=True)


if __name__ == "__main__":
    main()
