"""
A byte-level BPE tokenizer, trained here in well under a second, with special tokens for chat.
Notable features:
- the base vocabulary is the 256 bytes, so every string encodes and decode(encode(s)) == s
- text is first split by a regex into words (an optional leading space, then letters, digits,
  punctuation or whitespace); merges never cross a split. Training counts word *types*, so a
  few MB of a small-vocabulary language train fast, and encoding caches each word's ids
- training is deterministic (ties go to the smallest pair of ids) and encoding applies merges
  in the order they were learned, so each string has exactly one tokenization: a model's
  probability of the tokens is its probability of the string, and bits per byte can be
  compared with the dataset's exact entropy
- special tokens take the last ids and encode() never produces them: their strings inside
  ordinary text are encoded as ordinary bytes, so user text cannot forge a turn boundary
- render_conversation returns a loss mask that is 1 exactly on what the assistant should say
"""

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

SPECIAL_TOKENS = ["<|bos|>", "<|pad|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>",
                  "<|assistant_end|>"]

# Letters, digits (up to 3 at a time), and other symbols each take an optional leading space;
# whitespace runs leave their last space to the word that follows. "_" counts as a symbol here.
# Every character matches some branch, so the pieces always concatenate back to the text.
SPLIT = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def _utf8(text):
    # surrogatepass: even a str holding a lone surrogate survives the round trip
    return text.encode("utf-8", "surrogatepass")


def _merge(ids, pair, new_id):
    """ids with every non-overlapping occurrence of `pair`, left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _learn_merges(word_counts, num_merges):
    """Greedy BPE over word types: merge the most frequent adjacent pair, num_merges times.
    Pair counts are updated only for the words that contain the merged pair."""
    words = [list(_utf8(w)) for w in word_counts]
    counts = list(word_counts.values())
    pair_counts, where = Counter(), defaultdict(set)  # where: pair -> indices of words holding it
    for i, (ids, count) in enumerate(zip(words, counts)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += count
            where[pair].add(i)
    merges = []
    for new_id in range(256, 256 + num_merges):
        if not pair_counts:
            raise ValueError(f"the texts allow only {len(merges)} merges, {num_merges} were asked for")
        best = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))  # ties: smallest pair
        merges.append(best)
        for i in where.pop(best):
            ids, count = words[i], counts[i]
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] -= count
                if not pair_counts[pair]:
                    del pair_counts[pair]
            words[i] = ids = _merge(ids, best, new_id)
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += count
                where[pair].add(i)
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(pair) for pair in merges]
        self._rank = {pair: 256 + i for i, pair in enumerate(self.merges)}  # also the merged id
        self._bytes = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self._bytes.append(self._bytes[a] + self._bytes[b])
        first_special = len(self._bytes)
        self._special = {token: first_special + i for i, token in enumerate(SPECIAL_TOKENS)}
        self._bytes += [token.encode("utf-8") for token in SPECIAL_TOKENS]  # how decode() shows them
        self._cache = {}  # word -> ids: a corpus has few distinct words

    @classmethod
    def train(cls, texts, vocab_size):
        num_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
        if num_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)}")
        word_counts = Counter()
        for text in texts:
            word_counts.update(SPLIT.findall(text))
        return cls(_learn_merges(word_counts, num_merges))

    def save(self, path):
        Path(path).write_text(json.dumps({"special_tokens": SPECIAL_TOKENS, "merges": self.merges}))

    @classmethod
    def load(cls, path):
        state = json.loads(Path(path).read_text())
        if state["special_tokens"] != SPECIAL_TOKENS:
            raise ValueError(f"{path} was saved with special tokens {state['special_tokens']}")
        return cls(state["merges"])

    @property
    def vocab_size(self):
        return len(self._bytes)

    @property
    def bos_id(self):
        return self._special["<|bos|>"]

    @property
    def pad_id(self):
        return self._special["<|pad|>"]

    def special_id(self, name):
        """The id of a special token, named with or without its brackets: "<|bos|>" or "bos"."""
        return self._special[name if name.startswith("<|") else f"<|{name}|>"]

    def is_special(self, token_id):
        return token_id >= self.vocab_size - len(SPECIAL_TOKENS)

    def token_byte_length(self, token_id):
        """UTF-8 bytes of text a token stands for; 0 for special tokens, which stand for no text."""
        return 0 if self.is_special(token_id) else len(self._bytes[token_id])

    def _encode_word(self, word):
        ids = list(_utf8(word))
        while len(ids) > 1:
            # apply the earliest-learned merge present, exactly as training built the word up
            pair = min(zip(ids, ids[1:]), key=lambda p: self._rank.get(p, math.inf))
            if pair not in self._rank:
                break
            ids = _merge(ids, pair, self._rank[pair])
        return ids

    def encode(self, text):
        """Token ids of ordinary text. Never yields a special id, whatever the text contains."""
        ids = []
        for word in SPLIT.findall(text):
            if word not in self._cache:
                self._cache[word] = self._encode_word(word)
            ids.extend(self._cache[word])
        return ids

    def decode(self, ids):
        """The text for ids; special ids show as their strings. Exact for encode() output; a cut
        UTF-8 sequence, as a model may sample, becomes U+FFFD."""
        data = b"".join(self._bytes[i] for i in ids)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def render_conversation(self, conversation):
        """ids: <|bos|> then each message wrapped in its role's start and end tokens.
        mask: 1 on the tokens the model learns to produce (assistant content and <|assistant_end|>)."""
        ids, mask = [self.bos_id], [0]
        for message in conversation:
            role = message["role"]
            if role not in ("user", "assistant"):
                raise ValueError(f"unknown role {role!r}")
            content = self.encode(message["content"])
            learn = int(role == "assistant")
            ids += [self.special_id(f"{role}_start"), *content, self.special_id(f"{role}_end")]
            mask += [0] + [learn] * len(content) + [learn]
        return ids, mask
