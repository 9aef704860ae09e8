"""
Behavioural invariants of the picochat codebase (model, inference, optimizer, data).

Each test states something a user of the codebase would notice if it broke. Models are
tiny (a few thousand parameters) so the whole file runs in seconds on a CPU.
"""

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from picochat.dataloader import ChatDataset, TokenWindows, infinite_batches, pad_collate, pretraining_loader
from picochat.engine import Engine, KVCache, sample_next_token
from picochat.gpt import GPT, RMSNorm, apply_rotary, rotary_cos_sin
from picochat.optim import clip_grad_norm, configure_optimizer, lr_multiplier

IMPLS = ["explicit", "sdpa"]


# ----------------------------------------------------------------------------- helpers


def build(config, seed=0, train=False):
    torch.manual_seed(seed)
    model = GPT(config)
    return model.train(train)


def same_weights(model, **changes):
    """A copy of `model` with a changed config (e.g. the other attention path), same weights."""
    other = GPT(replace(model.config, **changes))
    other.load_state_dict(model.state_dict())
    return other.train(model.training)


def perturb_norm_gains(model, seed=1):
    """Move every RMSNorm gain away from 1, as training would, so gains cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, RMSNorm):
                module.weight.copy_(1.0 + 0.3 * torch.randn(module.weight.shape, generator=g))
    return model


def tokens(config, batch, length, seed=0):
    """Random ids that avoid the padding id."""
    g = torch.Generator().manual_seed(seed)
    low = 1 if config.pad_id == 0 else 0
    ids = torch.randint(low, config.vocab_size, (batch, length), generator=g)
    if config.pad_id not in (None, 0):
        ids[ids == config.pad_id] = (config.pad_id + 1) % config.vocab_size
    return ids


def other_token(config, token):
    new = token % (config.vocab_size - 1) + 1
    return new if new != config.pad_id else new % (config.vocab_size - 1) + 1


def attention_inputs(model, batch, length, seed=0):
    attn = model.blocks[0].attn
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, model.config.n_embd, generator=g)
    cos, sin = rotary_cos_sin(model.inv_freq, 0, length, x.device)
    return attn, x, cos, sin


# ----------------------------------------------------------------------------- 1. causality


@pytest.mark.parametrize("impl", IMPLS)
def test_changing_a_token_never_changes_earlier_predictions(tiny_config, impl):
    model = build(replace(tiny_config, attn_impl=impl))
    T = 16
    idx = tokens(tiny_config, 2, T)
    with torch.no_grad():
        base = model(idx)
        for t in (0, 1, 7, T - 1):
            changed = idx.clone()
            changed[:, t] = other_token(tiny_config, int(idx[0, t]))
            changed[1, t] = other_token(tiny_config, int(idx[1, t]))
            out = model(changed)
            # nothing before t may depend on the token at t ...
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
            # ... and every position from t on sees it
            per_position = (out[:, t:] - base[:, t:]).abs().amax(dim=-1)
            assert (per_position > 1e-5).all(), f"positions >= {t} ignore the token at {t}"


# ----------------------------------------------------------------------------- 2. explicit == sdpa


@pytest.mark.parametrize("with_mask", [False, True])
def test_explicit_and_sdpa_attention_agree(tiny_config, with_mask):
    explicit = perturb_norm_gains(build(tiny_config))
    sdpa = same_weights(explicit, attn_impl="sdpa")
    idx = tokens(tiny_config, 3, 20)
    mask = None
    if with_mask:
        mask = torch.ones(3, 20, dtype=torch.bool)
        mask[0, 12:] = False  # right padding
        mask[1, 5] = False  # a hole in the middle
        mask[2, 3:7] = False
    with torch.no_grad():
        a = explicit(idx, attn_mask=mask)
        b = sdpa(idx, attn_mask=mask)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_explicit_and_sdpa_agree_when_decoding_with_a_cache(tiny_config):
    explicit = perturb_norm_gains(build(tiny_config))
    sdpa = same_weights(explicit, attn_impl="sdpa")
    idx = tokens(tiny_config, 2, 14)
    outs = []
    with torch.no_grad():
        for model in (explicit, sdpa):
            cache = Engine(model, None).new_cache(batch_size=2)
            outs.append(torch.cat([model(idx[:, :6], kv_cache=cache), model(idx[:, 6:9], kv_cache=cache),
                                   model(idx[:, 9:10], kv_cache=cache)], dim=1))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- 3 + 9. attention from scratch


def reference_attention(attn, x, cos, sin, attn_mask=None):
    """Causal self-attention computed one head at a time on that head's slice of channels,
    with scores scaled by 1/sqrt(head_dim). Shares only the rotary helpers with the code."""
    B, T, C = x.shape
    H = attn.n_head
    D = C // H

    def rms(t, norm):
        return t * torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + norm.eps) * norm.weight

    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if attn_mask is not None:
        allowed = allowed & attn_mask[:, None, :]  # (B, T_q, T_k)
    heads = []
    for h in range(H):
        rows = slice(h * D, (h + 1) * D)
        q = x @ attn.c_q.weight[rows].T  # (B, T, D)
        k = x @ attn.c_k.weight[rows].T
        v = x @ attn.c_v.weight[rows].T
        q = apply_rotary(rms(q, attn.q_norm), cos[0, 0], sin[0, 0])
        k = apply_rotary(rms(k, attn.k_norm), cos[0, 0], sin[0, 0])
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        scores = scores.masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v)
    y = torch.cat(heads, dim=-1)  # head h back on channels h*D:(h+1)*D
    return y @ attn.c_proj.weight.T


@pytest.mark.parametrize("impl", IMPLS)
def test_attention_matches_a_per_head_reference_with_sqrt_head_dim_scaling(tiny_config, impl):
    model = perturb_norm_gains(build(replace(tiny_config, attn_impl=impl)))
    attn, x, cos, sin = attention_inputs(model, batch=2, length=12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 9:] = False
    mask[1, 4] = False
    with torch.no_grad():
        torch.testing.assert_close(attn(x, cos, sin), reference_attention(attn, x, cos, sin), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            attn(x, cos, sin, attn_mask=mask), reference_attention(attn, x, cos, sin, mask), atol=1e-5, rtol=1e-5
        )


def test_rms_norm_normalises_with_eps_and_applies_its_gain():
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    x = torch.randn(3, 5, 16) * 7.0
    expected = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)
    # a zero vector (the padding embedding) stays finite
    assert torch.isfinite(norm(torch.zeros(2, 16))).all()


# ----------------------------------------------------------------------------- 4. positions


def test_swapping_two_earlier_tokens_changes_the_last_prediction(tiny_config):
    # one layer: without position information the last position would see the same *set* of keys
    model = build(replace(tiny_config, n_layer=1))
    idx = tokens(tiny_config, 1, 10)
    idx[0, 2], idx[0, 6] = 5, 9
    swapped = idx.clone()
    swapped[0, 2], swapped[0, 6] = idx[0, 6], idx[0, 2]
    with torch.no_grad():
        diff = (model(idx)[0, -1] - model(swapped)[0, -1]).abs().max()
    assert diff > 1e-4, "the model cannot tell the order of earlier tokens: positions are not encoded"


def test_rotary_tables_follow_the_rope_formula(tiny_config):
    model = build(tiny_config)
    D = tiny_config.n_embd // tiny_config.n_head
    start, length = 5, 7
    cos, sin = rotary_cos_sin(model.inv_freq, start, length, torch.device("cpu"))
    freqs = tiny_config.rope_base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.arange(start, start + length, dtype=torch.float64)[:, None] * freqs[None, :]
    torch.testing.assert_close(cos.squeeze().double(), angles.cos(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sin.squeeze().double(), angles.sin(), atol=1e-5, rtol=1e-5)


def test_rotary_is_a_rotation_so_attention_depends_only_on_relative_position(tiny_config):
    model = build(tiny_config)  # qk-norm gains at their initial value of 1
    attn, x, _, _ = attention_inputs(model, batch=2, length=10)
    # rotating preserves the norm of every vector
    cos, sin = rotary_cos_sin(model.inv_freq, 3, 10, x.device)
    q = torch.randn(2, 4, 10, 16)
    torch.testing.assert_close(apply_rotary(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-5, rtol=1e-5)
    # shifting every position by the same offset changes nothing
    with torch.no_grad():
        at_zero = attn(x, *rotary_cos_sin(model.inv_freq, 0, 10, x.device))
        shifted = attn(x, *rotary_cos_sin(model.inv_freq, 13, 10, x.device))
    torch.testing.assert_close(at_zero, shifted, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_model_built_on_meta_device_runs_forward_on_that_device(tiny_config, impl):
    config = replace(tiny_config, attn_impl=impl)
    with torch.device("meta"):
        model = GPT(config).eval()
    idx = torch.zeros(2, 8, dtype=torch.long, device="meta")
    mask = torch.ones(2, 8, dtype=torch.bool, device="meta")
    logits = model(idx, attn_mask=mask)
    assert logits.device.type == "meta" and logits.shape == (2, 8, config.vocab_size)
    cache = KVCache(config.n_layer, 2, config.n_head, config.sequence_len, config.n_embd // config.n_head, "meta")
    model(idx, kv_cache=cache)
    assert model(idx[:, :1], kv_cache=cache).device.type == "meta"


# ----------------------------------------------------------------------------- 5. KV cache


@pytest.mark.parametrize("impl", IMPLS)
def test_kv_cache_chunks_give_the_same_logits_as_one_full_pass(tiny_config, impl):
    model = perturb_norm_gains(build(replace(tiny_config, attn_impl=impl)))
    idx = tokens(tiny_config, 2, 20)
    cache = Engine(model, None).new_cache(batch_size=2)
    assert cache.pos == 0
    with torch.no_grad():
        full = model(idx)
        for a, b in [(0, 7), (7, 8), (8, 12), (12, 13), (13, 20)]:
            step = model(idx[:, a:b], kv_cache=cache)
            assert cache.pos == b, "the cache position must advance by the number of tokens fed"
            torch.testing.assert_close(step, full[:, a:b], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, None), (0.8, 20)])
def test_cached_generation_equals_uncached_generation(tiny_config, impl, temperature, top_k):
    model = build(replace(tiny_config, attn_impl=impl))
    engine = Engine(model, None)
    prompt = tokens(tiny_config, 1, 5)[0].tolist()
    cached = engine.generate(prompt, max_tokens=12, temperature=temperature, top_k=top_k, seed=7)
    uncached = engine.generate_uncached(prompt, max_tokens=12, temperature=temperature, top_k=top_k, seed=7)
    assert len(cached) == 12
    assert cached == uncached
    assert engine.generate(prompt, max_tokens=12, temperature=temperature, top_k=top_k, seed=7) == cached


def test_generation_stops_at_the_stop_token(tiny_model, tiny_config):
    engine = Engine(tiny_model, None)
    prompt = tokens(tiny_config, 1, 4)[0].tolist()
    free = engine.generate(prompt, max_tokens=10, temperature=1.0, seed=3)
    stop = free[3]
    first = free.index(stop)
    assert engine.generate(prompt, max_tokens=10, temperature=1.0, seed=3, stop_id=stop) == free[: first + 1]
    assert engine.generate_uncached(prompt, max_tokens=10, temperature=1.0, seed=3, stop_id=stop) == free[: first + 1]


def test_generation_stops_cleanly_when_the_context_is_full(tiny_model, tiny_config):
    engine = Engine(tiny_model, None)
    prompt = tokens(tiny_config, 1, tiny_config.sequence_len - 3)[0].tolist()
    cached = engine.generate(prompt, max_tokens=50, temperature=0.0)
    uncached = engine.generate_uncached(prompt, max_tokens=50, temperature=0.0)
    # every position of the context is used, and the last one still predicts a token
    assert len(cached) == tiny_config.sequence_len - len(prompt) + 1
    assert cached == uncached


# ----------------------------------------------------------------------------- 6. sampling


def test_temperature_zero_is_greedy():
    logits = torch.randn(6, 50)
    logits[0, 3] = float("-inf")
    out = sample_next_token(logits, temperature=0.0)
    assert out.shape == (6, 1)
    assert torch.equal(out, logits.argmax(dim=-1, keepdim=True))
    with_top_k = sample_next_token(logits, temperature=0.0, top_k=5)
    assert torch.equal(with_top_k, out)


def test_top_k_larger_than_the_vocabulary_is_the_same_as_no_top_k():
    logits = torch.randn(8, 50)
    a = sample_next_token(logits, 1.0, top_k=500, generator=torch.Generator().manual_seed(5))
    b = sample_next_token(logits, 1.0, top_k=None, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_top_k_of_one_is_greedy(temperature):
    logits = torch.randn(64, 50)
    out = sample_next_token(logits, temperature, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, logits.argmax(dim=-1, keepdim=True))


def test_top_k_samples_only_and_all_of_the_k_most_likely_tokens():
    g = torch.Generator().manual_seed(0)
    logits = (0.3 * torch.randn(1, 40, generator=g)).expand(4000, 40)
    out = sample_next_token(logits, 1.0, top_k=5, generator=g).flatten()
    allowed = set(torch.topk(logits[0], 5).indices.tolist())
    assert set(out.tolist()) == allowed


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_sampling_frequencies_follow_softmax_of_logits_over_temperature(temperature):
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 0.2])
    n = 20000
    out = sample_next_token(logits.expand(n, -1), temperature, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(out.flatten(), minlength=8).float() / n
    expected = torch.softmax(logits / temperature, dim=-1)
    assert (freq - expected).abs().max() < 0.02


# ----------------------------------------------------------------------------- 7. context length


def test_sequences_longer_than_the_context_are_rejected(tiny_model, tiny_config):
    L = tiny_config.sequence_len
    assert tiny_model(tokens(tiny_config, 1, L)).shape == (1, L, tiny_config.vocab_size)
    with pytest.raises(Exception, match="exceeds"):
        tiny_model(tokens(tiny_config, 1, L + 1))
    cache = Engine(tiny_model, None).new_cache(batch_size=1)
    with torch.no_grad():
        tiny_model(tokens(tiny_config, 1, L - 2), kv_cache=cache)
        with pytest.raises(Exception):
            tiny_model(tokens(tiny_config, 1, 3), kv_cache=cache)


# ----------------------------------------------------------------------------- 8. padding


def padded_batch(config, lengths, seed=0):
    """Right-padded inputs/targets/mask built by hand, plus the unpadded sequences."""
    seqs = [tokens(config, 1, n + 1, seed=seed + i)[0] for i, n in enumerate(lengths)]
    T = max(lengths)
    inputs = torch.full((len(seqs), T), config.pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), T), -1, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for row, s in enumerate(seqs):
        n = len(s) - 1
        inputs[row, :n], targets[row, :n], mask[row, :n] = s[:-1], s[1:], True
    return seqs, inputs, targets, mask


@pytest.mark.parametrize("use_mask", [False, True])
def test_padding_is_ignored_by_the_loss(tiny_model, tiny_config, use_mask):
    seqs, inputs, targets, mask = padded_batch(tiny_config, [12, 5, 9])
    with torch.no_grad():
        batch_loss = tiny_model(inputs, targets, attn_mask=mask if use_mask else None)
        total = sum(tiny_model(s[None, :-1], s[None, 1:], loss_reduction="sum") for s in seqs)
    count = sum(len(s) - 1 for s in seqs)
    torch.testing.assert_close(batch_loss, total / count, atol=1e-5, rtol=1e-5)


def test_loss_is_the_mean_cross_entropy_of_the_next_token(tiny_model, tiny_config):
    idx = tokens(tiny_config, 2, 10)
    targets = tokens(tiny_config, 2, 10, seed=1)
    targets[0, :4] = -1  # prompt tokens
    with torch.no_grad():
        logits = tiny_model(idx)
        loss = tiny_model(idx, targets)
    logp = torch.log_softmax(logits.double(), dim=-1)
    keep = targets != -1
    expected = -logp[keep].gather(-1, targets[keep][:, None]).mean()
    torch.testing.assert_close(loss.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_right_padding_with_attn_mask_leaves_real_positions_unchanged(tiny_config, impl):
    model = build(replace(tiny_config, attn_impl=impl))
    seqs, inputs, _, mask = padded_batch(tiny_config, [12, 5, 9])
    with torch.no_grad():
        padded = model(inputs, attn_mask=mask)
        features = model.features(inputs, attn_mask=mask)
        for row, s in enumerate(seqs):
            n = len(s) - 1
            alone = model(s[None, :-1])
            torch.testing.assert_close(padded[row, :n], alone[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(features[row], model.features(s[None, :-1])[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_masked_out_positions_are_invisible_to_every_other_position(tiny_config, impl):
    model = build(replace(tiny_config, attn_impl=impl))
    idx = tokens(tiny_config, 1, 12)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 4] = False
    changed = idx.clone()
    changed[0, 4] = other_token(tiny_config, int(idx[0, 4]))
    with torch.no_grad():
        a, b = model(idx, attn_mask=mask), model(changed, attn_mask=mask)
        unmasked = model(changed)
    keep = torch.arange(12) != 4
    torch.testing.assert_close(a[0, keep], b[0, keep], atol=1e-6, rtol=0)
    assert (unmasked[0, 5:] - a[0, 5:]).abs().max() > 1e-4  # without the mask the token is seen


def test_padded_batch_gives_finite_loss_and_gradients_and_the_pad_embedding_stays_zero(tiny_config):
    model = build(tiny_config, train=True)
    pad = tiny_config.pad_id
    assert torch.count_nonzero(model.wte.weight[pad]) == 0
    _, inputs, targets, mask = padded_batch(tiny_config, [12, 5, 9])
    optimizer = configure_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95))
    for use_mask in (True, False):
        optimizer.zero_grad(set_to_none=True)
        loss = model(inputs, targets, attn_mask=mask if use_mask else None)
        loss.backward()
        assert torch.isfinite(loss)
        for name, p in model.named_parameters():
            assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
        assert torch.count_nonzero(model.wte.weight.grad[pad]) == 0
        optimizer.step()
    assert torch.count_nonzero(model.wte.weight[pad]) == 0, "the padding embedding was trained"


# ----------------------------------------------------------------------------- 10. dropout


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_acts_in_train_mode_only(tiny_config, impl):
    model = build(replace(tiny_config, attn_impl=impl, dropout=0.3))
    idx = tokens(tiny_config, 2, 12)
    torch.manual_seed(0)
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(idx), model(idx))
        model.eval()
        evaluated = model(idx)
        torch.testing.assert_close(model(idx), evaluated, atol=0, rtol=0)
        torch.testing.assert_close(same_weights(model, dropout=0.0)(idx), evaluated, atol=1e-6, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_reaches_both_attention_and_mlp(tiny_config, impl):
    model = build(replace(tiny_config, attn_impl=impl, dropout=0.3))
    attn, x, cos, sin = attention_inputs(model, batch=2, length=12)
    mlp = model.blocks[0].mlp
    torch.manual_seed(0)
    with torch.no_grad():
        for module, call in ((attn, lambda: attn(x, cos, sin)), (mlp, lambda: mlp(x))):
            module.train()
            assert not torch.allclose(call(), call()), f"no dropout in {type(module).__name__}"
            module.eval()
            torch.testing.assert_close(call(), call(), atol=0, rtol=0)


# ----------------------------------------------------------------------------- 11. gradients


def test_every_parameter_receives_a_gradient(tiny_config):
    model = perturb_norm_gains(build(tiny_config, train=True))
    idx = tokens(tiny_config, 2, 16)
    loss = model(idx, tokens(tiny_config, 2, 16, seed=1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.requires_grad, f"{name} is frozen"
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_initial_loss_is_close_to_uniform_guessing(tiny_model, tiny_config):
    with torch.no_grad():
        loss = tiny_model(tokens(tiny_config, 4, 16), tokens(tiny_config, 4, 16, seed=1))
    assert abs(loss.item() - math.log(tiny_config.vocab_size)) < 1.0


def test_training_on_one_batch_drives_the_loss_down(tiny_config):
    model = build(tiny_config, train=True)
    idx = tokens(tiny_config, 4, 16)
    targets = tokens(tiny_config, 4, 16, seed=1)
    optimizer = configure_optimizer(model, lr=1e-2, weight_decay=0.0, betas=(0.9, 0.95))
    losses = []
    for _ in range(25):
        loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- 12. optimizer


def test_every_parameter_is_in_exactly_one_optimizer_group_with_the_right_decay(tiny_model):
    optimizer = configure_optimizer(tiny_model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    seen = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in seen, "a parameter is in two groups"
            seen[id(p)] = group["weight_decay"]
    for name, p in tiny_model.named_parameters():
        assert id(p) in seen, f"{name} is not optimised"
        should_decay = p.dim() >= 2 and p is not tiny_model.wte.weight
        assert seen[id(p)] == (0.1 if should_decay else 0.0), name
    assert tiny_model.lm_head.weight.dim() == 2 and seen[id(tiny_model.lm_head.weight)] == 0.1


def test_clip_grad_norm_returns_the_global_norm_and_clips_to_max_norm(tiny_model):
    params = list(tiny_model.parameters())
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    params[1].grad = None  # parameters without a gradient are skipped
    grads = [p.grad.clone() for p in params if p.grad is not None]
    true_norm = torch.linalg.vector_norm(torch.cat([x.flatten() for x in grads]))
    assert true_norm > 2.0

    returned = clip_grad_norm(tiny_model.parameters(), max_norm=2.0)
    torch.testing.assert_close(torch.as_tensor(returned).float(), true_norm, rtol=1e-5, atol=0)
    after = [p.grad for p in params if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.cat([x.flatten() for x in after]))
    torch.testing.assert_close(clipped, torch.tensor(2.0), rtol=1e-4, atol=0)
    for before, now in zip(grads, after):  # direction kept: one common scale factor
        torch.testing.assert_close(now, before * (2.0 / true_norm), rtol=1e-4, atol=1e-7)

    # below the threshold nothing changes
    small = [p.grad.clone() for p in params if p.grad is not None]
    clip_grad_norm(tiny_model.parameters(), max_norm=100.0)
    for before, p in zip(small, [p for p in params if p.grad is not None]):
        torch.testing.assert_close(p.grad, before, rtol=1e-6, atol=0)


def test_learning_rate_warms_up_linearly_then_decays_to_the_floor():
    warmup, total, final = 10, 110, 0.1
    m = [lr_multiplier(s, warmup, total, final) for s in range(total + 30)]
    assert m[0] > 0, "the first step must not have a zero learning rate"
    steps = [m[i + 1] - m[i] for i in range(warmup - 1)]
    assert all(abs(d - steps[0]) < 1e-9 for d in steps) and steps[0] > 0, "warmup is not linear"
    assert max(m) == pytest.approx(1.0) and m[warmup] == pytest.approx(1.0)
    assert all(m[i + 1] <= m[i] + 1e-12 for i in range(warmup, len(m) - 1)), "lr rises after warmup"
    assert m[(warmup + total) // 2] == pytest.approx((1 + final) / 2)
    assert m[total] == pytest.approx(final)
    assert all(x == pytest.approx(final) for x in m[total:])


# ----------------------------------------------------------------------------- 13. data


def window_ids(inputs, window):
    return (inputs[:, 0] // window).tolist()


def test_targets_are_the_inputs_shifted_by_one_token():
    stream = torch.arange(13 * 10 + 5)
    for random_crop in (True, False):
        ds = TokenWindows(stream, seq_len=8, crop_margin=4, random_crop=random_crop, seed=0)
        assert len(ds) == 10
        for i in range(len(ds)):
            x, y = ds[i]
            assert len(x) == len(y) == 8
            assert torch.equal(y, x + 1), "targets must be the next token of each input"
            # every crop stays inside its own window
            assert x[0] >= i * ds.window and y[-1] < (i + 1) * ds.window


def test_validation_crops_repeat_across_epochs_while_training_crops_vary():
    stream = torch.arange(13 * 20)
    val = TokenWindows(stream, seq_len=8, crop_margin=4, random_crop=False, seed=0)
    train = TokenWindows(stream, seq_len=8, crop_margin=4, random_crop=True, seed=0)

    def epoch_items(ds, epoch):
        ds.set_epoch(epoch)
        return [ds[i][0] for i in range(len(ds))]

    v0, v1 = epoch_items(val, 0), epoch_items(val, 1)
    assert all(torch.equal(a, b) for a, b in zip(v0, v1))
    t0, t1 = epoch_items(train, 0), epoch_items(train, 1)
    assert any(not torch.equal(a, b) for a, b in zip(t0, t1)), "training crops are the same every epoch"
    assert len({int(x[0]) % train.window for x in t0}) > 1, "training crops are all at one offset"


def test_two_ranks_split_an_epoch_into_disjoint_halves():
    window, n = 13, 16
    stream = torch.arange(window * n + 3)

    def epoch_windows(rank, world_size):
        loader = pretraining_loader(stream, 8, 4, SimpleNamespace(rank=rank, world_size=world_size), seed=1,
                                    train=True, crop_margin=4)
        loader.sampler.set_epoch(0)
        loader.dataset.set_epoch(0)
        return [w for inputs, _ in loader for w in window_ids(inputs, window)]

    r0, r1, single = epoch_windows(0, 2), epoch_windows(1, 2), epoch_windows(0, 1)
    assert len(r0) == len(r1) == n // 2
    assert not set(r0) & set(r1)
    assert set(r0) | set(r1) == set(single) == set(range(n))


def test_pad_collate_pads_inputs_with_pad_id_targets_with_minus_one_and_masks_padding():
    batch = [([5, 6, 7], [6, 7, -1]), ([1, 2, 3, 4, 5], [-1, 3, 4, 5, 9]), ([8], [2])]
    inputs, targets, mask = pad_collate(batch, pad_id=11)
    assert inputs.shape == targets.shape == mask.shape == (3, 5)
    assert mask.dtype == torch.bool
    for row, (x, y) in enumerate(batch):
        n = len(x)
        assert inputs[row, :n].tolist() == x and targets[row, :n].tolist() == y
        assert (inputs[row, n:] == 11).all() and (targets[row, n:] == -1).all()
        assert mask[row, :n].all() and not mask[row, n:].any()


def test_chat_targets_are_next_tokens_kept_only_where_the_assistant_speaks():
    class StubTokenizer:
        pad_id = 0

        def render_conversation(self, conversation):
            ids = list(conversation)
            mask = [i >= 4 for i in range(len(ids))]  # assistant from position 4 on
            return ids, mask

    ds = ChatDataset([list(range(10, 22))], StubTokenizer(), seq_len=8)
    inputs, targets = ds[0]
    ids = list(range(10, 19))  # truncated to seq_len + 1
    assert list(inputs) == ids[:-1]
    assert list(targets) == [tok if i + 1 >= 4 else -1 for i, tok in enumerate(ids[1:])]


def test_training_order_is_shuffled_and_changes_every_epoch_validation_order_is_fixed():
    window, n = 13, 24
    stream = torch.arange(window * n)
    train = pretraining_loader(stream, 8, 4, SimpleNamespace(rank=0, world_size=1), seed=3, train=True, crop_margin=4)
    val = pretraining_loader(stream, 8, 4, SimpleNamespace(rank=0, world_size=1), seed=3, train=False, crop_margin=4)

    def two_epochs(loader):
        """Window order and each window's first input token, per epoch, as infinite_batches serves them."""
        orders, starts = {0: [], 1: []}, {0: {}, 1: {}}
        batches = infinite_batches(loader)
        for _ in range(2 * len(loader)):
            epoch, inputs, _ = next(batches)
            orders[epoch] += window_ids(inputs, window)
            starts[epoch].update(zip(window_ids(inputs, window), inputs[:, 0].tolist()))
        return orders, starts

    orders, train_starts = two_epochs(train)
    t0, t1 = orders[0], orders[1]
    assert sorted(t0) == sorted(t1) == list(range(n))
    assert t0 != list(range(n)), "training reads the windows in storage order"
    assert t0 != t1, "training order is the same every epoch"
    assert train_starts[0] != train_starts[1], "training crops are the same every epoch"

    orders, val_starts = two_epochs(val)
    assert orders[0] == orders[1] == list(range(n))
    assert val_starts[0] == val_starts[1], "validation crops change between epochs"


def test_resuming_with_skip_continues_the_same_batch_stream():
    stream = torch.arange(13 * 12)
    loader = pretraining_loader(stream, 8, 4, SimpleNamespace(rank=0, world_size=1), seed=3, train=True, crop_margin=4)
    full = infinite_batches(loader)
    reference = [next(full) for _ in range(3 * len(loader))]
    skip = len(loader) + 1  # into the second epoch
    resumed = infinite_batches(loader, skip=skip)
    for epoch, inputs, targets in reference[skip:]:
        e, x, y = next(resumed)
        assert e == epoch and torch.equal(x, inputs) and torch.equal(y, targets)
