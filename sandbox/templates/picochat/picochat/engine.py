"""
Inference: sampling from a trained GPT. Notable features:
- a KV cache preallocated for the model's whole context; its position advances after
  every forward pass, and the rotary embeddings read the position from it
- temperature 0 means greedy decoding (no division by zero)
- top-k filtering, with k clamped to the vocabulary size
- a plain full-sequence generator beside the cached one, so the two can be compared
"""

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(self, n_layer, batch_size, n_head, max_len, head_dim, device, dtype=torch.float32):
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0  # number of positions already written, shared by all layers

    def update(self, layer_idx, k, v):
        """Write this step's keys/values after the cached ones; return everything so far."""
        T = k.size(2)
        end = self.pos + T
        self.k[layer_idx, :, :, self.pos:end] = k
        self.v[layer_idx, :, :, self.pos:end] = v
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def advance(self, num_tokens):
        # called once per forward pass, after every layer has written at the old position
        self.pos += num_tokens


def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    """logits (B, V) -> next token ids (B, 1)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        k = min(top_k, logits.size(-1))
        kth_largest = torch.topk(logits, k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


class Engine:
    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def new_cache(self, batch_size):
        cfg = self.model.config
        device = next(self.model.parameters()).device
        return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.sequence_len, cfg.n_embd // cfg.n_head, device)

    @torch.inference_mode()
    def generate(self, tokens, max_tokens, temperature=1.0, top_k=None, seed=42, stop_id=None):
        """Generate up to max_tokens after the prompt `tokens` (a list of ids), using the KV cache.
        Stops early at stop_id, or when the context is full."""
        self.model.eval()
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        cache = self.new_cache(batch_size=1)
        ids = torch.tensor([tokens], dtype=torch.long, device=device)
        logits = self.model(ids, kv_cache=cache)[:, -1, :]
        out = []
        for _ in range(max_tokens):
            next_id = sample_next_token(logits, temperature, top_k, generator)
            out.append(next_id.item())
            if next_id.item() == stop_id or cache.pos >= cache.max_len:
                break
            logits = self.model(next_id, kv_cache=cache)[:, -1, :]
        return out

    @torch.inference_mode()
    def generate_uncached(self, tokens, max_tokens, temperature=1.0, top_k=None, seed=42, stop_id=None):
        """Reference generator: re-runs the whole sequence every step. Slow, but obviously right."""
        self.model.eval()
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        ids = torch.tensor([tokens], dtype=torch.long, device=device)
        out = []
        for _ in range(max_tokens):
            context = ids[:, -self.model.config.sequence_len:]
            logits = self.model(context)[:, -1, :]
            next_id = sample_next_token(logits, temperature, top_k, generator)
            out.append(next_id.item())
            if next_id.item() == stop_id or ids.size(1) >= self.model.config.sequence_len:
                break
            ids = torch.cat([ids, next_id], dim=1)
        return out
