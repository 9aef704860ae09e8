"""
Batches for pretraining, chat fine-tuning and the classification probe. Notable features:
- the token stream is cut into fixed windows; each epoch visits them in a fresh seeded
  order, split across ranks by a DistributedSampler (also with a single process)
- windows are a few tokens longer than the context: training takes a random crop of
  each (augmentation), validation always the centre crop, so its loss is repeatable
- inputs and targets are the same window shifted by one token
- chat batches are padded to their longest conversation; padded positions and prompt
  tokens get target -1 and an attention mask of False
- DataLoader workers are optional (num_workers); every item is computed from its index,
  so results do not depend on how many workers there are
"""

import functools
import random

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class TokenWindows(Dataset):
    """Non-overlapping windows of seq_len + 1 + crop_margin tokens over a token stream."""

    def __init__(self, tokens, seq_len, crop_margin, random_crop, seed):
        self.window = seq_len + 1 + crop_margin
        self.num_windows = len(tokens) // self.window
        self.windows = tokens[: self.num_windows * self.window].view(self.num_windows, self.window)
        self.seq_len = seq_len
        self.crop_margin = crop_margin
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.num_windows

    def __getitem__(self, index):
        if self.random_crop:
            # seeded by (seed, epoch, index): the same crop whichever worker computes it
            offset = random.Random(f"{self.seed}-{self.epoch}-{index}").randint(0, self.crop_margin)
        else:
            offset = self.crop_margin // 2
        chunk = self.windows[index, offset : offset + self.seq_len + 1]
        return chunk[:-1], chunk[1:]


def pretraining_loader(tokens, seq_len, batch_size, dist_info, seed, train, crop_margin=8, num_workers=0):
    windows = TokenWindows(tokens, seq_len, crop_margin, random_crop=train, seed=seed)
    sampler = DistributedSampler(
        windows,
        num_replicas=dist_info.world_size,
        rank=dist_info.rank,
        shuffle=train,
        seed=seed,
        drop_last=True,
    )
    # a generator of its own: iterating must not draw from the global one that dropout uses
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        windows, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=train,
        generator=generator,
    )


def infinite_batches(loader, skip=0):
    """Yield (epoch, inputs, targets) forever, reshuffling at the start of each epoch.
    `skip` batches are passed over first, so a resumed run sees the data it would have seen."""
    epoch, skip = divmod(skip, len(loader))
    while True:
        loader.sampler.set_epoch(epoch)
        loader.dataset.set_epoch(epoch)
        for position, (inputs, targets) in enumerate(loader):
            if position >= skip:
                yield epoch, inputs, targets
        skip = 0
        epoch += 1


class ChatDataset(Dataset):
    """Conversations rendered to token ids on demand, truncated to the context."""

    def __init__(self, conversations, tokenizer, seq_len):
        self.conversations = conversations
        self.tokenizer = tokenizer
        self.seq_len = seq_len

    def __len__(self):
        return len(self.conversations)

    def __getitem__(self, index):
        ids, mask = self.tokenizer.render_conversation(self.conversations[index])
        ids, mask = ids[: self.seq_len + 1], mask[: self.seq_len + 1]
        inputs = ids[:-1]
        # a target counts only where the model should produce it (assistant tokens)
        targets = [tok if keep else -1 for tok, keep in zip(ids[1:], mask[1:])]
        return inputs, targets


def pad_collate(batch, pad_id):
    """Right-pad a list of (inputs, targets) to the longest; returns inputs, targets, attn_mask."""
    longest = max(len(inputs) for inputs, _ in batch)
    inputs = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), longest), -1, dtype=torch.long)
    attn_mask = torch.zeros((len(batch), longest), dtype=torch.bool)
    for row, (x, y) in enumerate(batch):
        inputs[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        targets[row, : len(y)] = torch.tensor(y, dtype=torch.long)
        attn_mask[row, : len(x)] = True
    return inputs, targets, attn_mask


def chat_loader(conversations, tokenizer, seq_len, batch_size, seed, shuffle, num_workers=0):
    chats = ChatDataset(conversations, tokenizer, seq_len)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        chats,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        collate_fn=functools.partial(pad_collate, pad_id=tokenizer.pad_id),
    )
