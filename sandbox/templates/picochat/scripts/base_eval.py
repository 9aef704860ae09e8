"""
Evaluate the base model.

    python -m scripts.base_eval --preset=tiny

Notable features:
- validation bits per byte over the whole held-out set, beside the text's exact entropy
- next-token accuracy of the greedy prediction
- sampled stories, and the fraction of them the story grammar can parse
- a classification probe on frozen features: mean-pooled hidden states, standardised
  with statistics of the probe's training split only, a small head with BatchNorm,
  class-weighted cross-entropy for the 90/10 imbalance; reports accuracy, balanced
  accuracy and recall on the rare class
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from picochat import dataset
from picochat.checkpoint import load_model
from picochat.common import SINGLE_PROCESS, arg, autodetect_device, base_dir, cpu_threads, parse_args, seed_everything
from picochat.corpus import bits_per_byte, corpus_path, load_corpus
from picochat.dataloader import pad_collate, pretraining_loader
from picochat.engine import Engine


@dataclass
class EvalConfig:
    num_stories: int = arg(20000, "size of the pretraining corpus (selects corpus and tokenizer)")
    vocab_size: int = arg(512, "tokenizer vocabulary")
    device_batch_size: int = arg(16, "sequences per forward pass")
    num_samples: int = arg(20, "stories to sample")
    probe_examples: int = arg(2000, "labelled texts for the classification probe")
    probe_epochs: int = arg(30, "probe training epochs")
    device: str = arg("auto", "cpu, cuda, mps or auto")
    seed: int = arg(42, "seed")


@torch.no_grad()
def language_model_metrics(model, corpus, batch_size, device):
    loader = pretraining_loader(corpus.val_tokens, model.config.sequence_len, batch_size,
                                SINGLE_PROCESS, seed=0, train=False)
    token_bytes = corpus.token_bytes.to(device)
    total_nats, total_bytes, correct, total = 0.0, 0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)
        total_nats += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
        total_bytes += token_bytes[targets].sum().item()
        predictions = logits.argmax(dim=-1)
        correct += (predictions == targets).sum().item()
        total += targets.numel()
    return bits_per_byte(total_nats, total_bytes), correct / total


def sample_stories(model, tokenizer, num_samples, seed):
    engine = Engine(model, tokenizer)
    stories = []
    for i in range(num_samples):
        out = engine.generate([tokenizer.bos_id], model.config.sequence_len - 1, temperature=1.0,
                              seed=seed + i, stop_id=tokenizer.bos_id)
        stories.append(tokenizer.decode([t for t in out if t != tokenizer.bos_id]))
    return stories


def probe_features(model, tokenizer, texts, device, batch_size=64):
    features = []
    for i in range(0, len(texts), batch_size):
        batch = [(tokenizer.encode(t)[: model.config.sequence_len], []) for t in texts[i : i + batch_size]]
        inputs, _, attn_mask = pad_collate(batch, tokenizer.pad_id)
        features.append(model.features(inputs.to(device), attn_mask.to(device)).float().cpu())
    return torch.cat(features)


def train_probe(features, labels, epochs, seed):
    generator = torch.Generator().manual_seed(seed)
    head = nn.Sequential(nn.Linear(features.size(1), 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
    # weight each class by the inverse of its frequency so the rare class is not ignored
    counts = torch.bincount(labels, minlength=2).float()
    class_weights = counts.sum() / (2 * counts)
    head.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(64):
            logits = head(features[batch])
            loss = F.cross_entropy(logits, labels[batch], weight=class_weights)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    head.eval()
    return head


def classification_metrics(logits, labels):
    predictions = logits.argmax(dim=1)
    accuracy = (predictions == labels).float().mean().item()
    recalls = [(predictions[labels == c] == c).float().mean().item() for c in (0, 1)]
    return {"accuracy": accuracy, "balanced_accuracy": sum(recalls) / 2, "rare_class_recall": recalls[1]}


def probe_metrics(model, tokenizer, num_examples, epochs, seed, device):
    examples = dataset.generate_classification(num_examples, seed)
    texts = [text for text, _ in examples]
    labels = torch.tensor([label for _, label in examples])
    features = probe_features(model, tokenizer, texts, device)
    split = int(0.8 * len(labels))
    train_x, test_x = features[:split], features[split:]
    train_y, test_y = labels[:split], labels[split:]
    # standardise with the training split's statistics only
    mean, std = train_x.mean(dim=0), train_x.std(dim=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    head = train_probe(train_x, train_y, epochs, seed)
    with torch.no_grad():
        return classification_metrics(head(train_x), train_y), classification_metrics(head(test_x), test_y)


def main():
    args = parse_args(EvalConfig(), __doc__.strip().splitlines()[0])
    device = autodetect_device(args.device)
    threads = cpu_threads(device)
    seed_everything(args.seed)
    print(f"config: {asdict(args)}", flush=True)
    print(f"device: {device} | cpu threads: {threads}", flush=True)
    corpus = load_corpus(corpus_path(base_dir(), args.num_stories, args.vocab_size, args.seed))
    model = load_model(base_dir() / "checkpoints" / "latest.pt", device)
    model.eval()

    bpb, accuracy = language_model_metrics(model, corpus, args.device_batch_size, device)
    print(f"val bpb: {bpb:.4f} | entropy floor bpb: {corpus.val_entropy_bpb:.4f} | "
          f"next-token accuracy: {accuracy:.4f}", flush=True)

    stories = sample_stories(model, corpus.tokenizer, args.num_samples, args.seed)
    parsed = sum(dataset.count_derivations(s) > 0 for s in stories)
    for story in stories[:3]:
        print(f"sample: {story!r}", flush=True)
    print(f"samples the grammar parses: {parsed}/{len(stories)}", flush=True)

    train_metrics, test_metrics = probe_metrics(
        model, corpus.tokenizer, args.probe_examples, args.probe_epochs, args.seed, device
    )
    for name, metrics in (("train", train_metrics), ("test", test_metrics)):
        print(f"probe {name} | " + " | ".join(f"{k}: {v:.4f}" for k, v in metrics.items()), flush=True)
    print(f"summary | val bpb: {bpb:.4f} | next-token accuracy: {accuracy:.4f} | "
          f"parsed samples: {parsed}/{len(stories)} | probe balanced accuracy: "
          f"{test_metrics['balanced_accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
