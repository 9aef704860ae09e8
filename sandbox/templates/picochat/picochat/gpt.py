"""
The GPT model. Notable features:
- rotary position embeddings (no learned positional embeddings), computed for the
  positions actually in use, so a KV cache can continue from any offset
- QK norm: queries and keys are RMS-normalised before the dot product
- an RMSNorm of our own (learnable gain, eps inside the square root)
- two attention paths: an explicit one (scores, scale, causal mask, softmax) that the
  practice sizes use, and F.scaled_dot_product_attention behind config.attn_impl="sdpa"
- pre-norm residual blocks, relu^2 MLP with dropout, no bias in linear layers
- untied input embedding and output head; the padding token's embedding is fixed at zero
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 512
    sequence_len: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    rope_base: float = 10000.0
    attn_impl: str = "explicit"  # "explicit" or "sdpa"
    pad_id: int | None = None  # embedding row held at zero for padded batches


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # normalise in fp32: the mean of squares underflows easily in half precision
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rotary_cos_sin(inv_freq, start, length, device):
    """cos/sin tables for positions start..start+length-1, shaped (1, 1, length, head_dim/2)."""
    positions = torch.arange(start, start + length, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)
    return angles.cos()[None, None], angles.sin()[None, None]


def apply_rotary(x, cos, sin):
    """Rotate each pair of channels (first half, second half) by its position's angle."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x2 * cos - x1 * sin
    return torch.cat([y1, y2], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.attn_impl = config.attn_impl
        self.dropout = config.dropout
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)

    def forward(self, x, cos, sin, kv_cache=None, attn_mask=None):
        B, T, C = x.size()
        # split the channels into heads: (B, T, C) -> (B, n_head, T, head_dim)
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = self.c_v(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        # normalise before rotating: a learned gain applied after RoPE would break relative positions
        q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)
        if self.attn_impl == "sdpa":
            y = self._sdpa_attention(q, k, v, attn_mask)
        else:
            y = self._explicit_attention(q, k, v, attn_mask)
        # merge the heads back: (B, n_head, T, head_dim) -> (B, T, C)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def _explicit_attention(self, q, k, v, attn_mask):
        T_q, T_k = q.size(-2), k.size(-2)
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = (q @ k.transpose(-2, -1)) * scale
        # queries are the last T_q of the T_k positions, so query i may see keys up to T_k - T_q + i
        mask = torch.ones(T_q, T_k, dtype=torch.bool, device=q.device).tril(diagonal=T_k - T_q)
        if attn_mask is not None:
            # attn_mask is (B, T_k), True for real tokens
            mask = mask & attn_mask[:, None, None, :]
        scores = scores.masked_fill(~mask, float("-inf"))
        att = F.softmax(scores, dim=-1)
        att = F.dropout(att, p=self.dropout, training=self.training)
        return att @ v

    def _sdpa_attention(self, q, k, v, attn_mask):
        T_q, T_k = q.size(-2), k.size(-2)
        dropout_p = self.dropout if self.training else 0.0
        if attn_mask is None and T_q == T_k:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        mask = torch.ones(T_q, T_k, dtype=torch.bool, device=q.device).tril(diagonal=T_k - T_q)
        if attn_mask is not None:
            mask = mask & attn_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = F.relu(self.c_fc(x)).square()
        return self.dropout(self.c_proj(x))


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.norm_1 = RMSNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.norm_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, kv_cache=None, attn_mask=None):
        x = x + self.attn(self.norm_1(x), cos, sin, kv_cache, attn_mask)
        x = x + self.mlp(self.norm_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, padding_idx=config.pad_id)
        self.blocks = nn.ModuleList([Block(config, i) for i in range(config.n_layer)])
        self.norm_f = RMSNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        head_dim = config.n_embd // config.n_head
        inv_freq = 1.0 / (config.rope_base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=module.in_features ** -0.5)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=1.0)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def hidden_states(self, idx, kv_cache=None, attn_mask=None):
        B, T = idx.size()
        start = kv_cache.pos if kv_cache is not None else 0
        assert start + T <= self.config.sequence_len, (
            f"sequence of length {start + T} exceeds the model's context of {self.config.sequence_len}"
        )
        cos, sin = rotary_cos_sin(self.inv_freq, start, T, idx.device)
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x, cos, sin, kv_cache, attn_mask)
        if kv_cache is not None:
            kv_cache.advance(T)
        return self.norm_f(x)

    def forward(self, idx, targets=None, kv_cache=None, attn_mask=None, loss_reduction="mean"):
        x = self.hidden_states(idx, kv_cache, attn_mask)
        logits = self.lm_head(x).float()
        if targets is None:
            return logits
        # targets of -1 (padding, prompt tokens) are left out of the loss
        return F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=loss_reduction
        )

    @torch.no_grad()
    def features(self, idx, attn_mask=None):
        """Mean of the final hidden states over real tokens: a sentence embedding for probes."""
        x = self.hidden_states(idx, attn_mask=attn_mask)
        if attn_mask is None:
            return x.mean(dim=1)
        weights = attn_mask.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(dim=1) / weights.sum(dim=1)
