"""
The pretraining corpus, built once per (size, vocab, seed) and cached on disk. Notable features:
- stories come from picochat.dataset's grammar, so the entropy of the validation text is
  known exactly: the best bits per byte any model can reach on it
- duplicates are removed and the train/val split is made before anything is learned
  from the text; the tokenizer is trained on the training split only
- the training split is stored grouped by story template (the order a scraper or a
  generator would produce), so the data loader has to shuffle it
- each document is prefixed with <|bos|>; documents are concatenated into one stream
- built by the master rank into a temporary directory and renamed into place, so a
  reader never sees half a corpus
"""

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from picochat import dataset
from picochat.tokenizer import Tokenizer


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train_tokens: torch.Tensor  # 1-D int64 stream
    val_tokens: torch.Tensor
    val_entropy_bpb: float  # exact entropy of the validation text, bits per byte
    token_bytes: torch.Tensor  # utf-8 bytes each token id stands for (0 for special tokens)


def corpus_path(base_dir, num_stories, vocab_size, seed):
    return Path(base_dir) / f"corpus_n{num_stories}_v{vocab_size}_s{seed}"


def build_corpus(path, num_stories, vocab_size, seed, val_fraction=0.1):
    path = Path(path)
    stories = dataset.generate_stories(num_stories, seed)
    train, val = dataset.split_train_val(stories, val_fraction, seed)
    train = dataset.grouped_by_template(train)
    tokenizer = Tokenizer.train([s.text for s in train], vocab_size)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer.save(tmp / "tokenizer.json")
    torch.save(
        {"train": encode_documents(tokenizer, train), "val": encode_documents(tokenizer, val)},
        tmp / "tokens.pt",
    )
    meta = {
        "num_train_docs": len(train),
        "num_val_docs": len(val),
        "val_entropy_bpb": dataset.entropy_bits_per_byte(val),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    tmp.rename(path)


def encode_documents(tokenizer, samples):
    ids = []
    for sample in samples:
        ids.append(tokenizer.bos_id)
        ids.extend(tokenizer.encode(sample.text))
    return torch.tensor(ids, dtype=torch.long)


def load_corpus(path):
    path = Path(path)
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    tokens = torch.load(path / "tokens.pt")
    meta = json.loads((path / "meta.json").read_text())
    token_bytes = torch.tensor([tokenizer.token_byte_length(i) for i in range(tokenizer.vocab_size)])
    return Corpus(tokenizer, tokens["train"], tokens["val"], meta["val_entropy_bpb"], token_bytes)


def bits_per_byte(total_nats, total_bytes):
    return total_nats / (math.log(2) * max(total_bytes, 1))
