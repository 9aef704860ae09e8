"""Bugs in the model: picochat/gpt.py (attention, positions, norms, blocks, loss)."""

import math

import libcst as cst_
import libcst.matchers as m
import torch

from bug_catalog import cst
from bug_catalog.registry import check, edit
from bug_catalog.support import assert_qk_scale_invariant, tiny_config, tiny_model

GPT_FILE = "picochat/gpt.py"
EXPLICIT = "CausalSelfAttention._explicit_attention"
SDPA = "CausalSelfAttention._sdpa_attention"
ATTN = "CausalSelfAttention.forward"


def call(name):
    """A call of a function or method called `name`."""
    return m.Call(func=m.Name(name) | m.Attribute(attr=m.Name(name)))


def statement_with(matcher):
    return m.SimpleStatementLine() & m.MatchIfTrue(lambda node: bool(m.findall(node, matcher)))


def replace_statement(source, scope, matcher, code):
    """Replace the one statement line containing `matcher` by `code` (one or more statements),
    keeping the comment lines above it."""

    def make(node):
        new = cst_.parse_module(code).body
        first = new[0].with_changes(leading_lines=node.leading_lines)
        return cst_.FlattenSentinel([first, *new[1:]]) if len(new) > 1 else first

    return cst.replace_node(source, scope, statement_with(matcher), make)


def replace_arg(source, scope, call_matcher, keyword, code):
    """Replace the value of keyword argument `keyword` in the one call matching `call_matcher`."""
    def make(node):
        args = [a.with_changes(value=cst.parse_expression(code)) if a.keyword and a.keyword.value == keyword else a
                for a in node.args]
        return node.with_changes(args=args)

    call_with = call_matcher & m.Call(args=[m.ZeroOrMore(), m.Arg(keyword=m.Name(keyword)), m.ZeroOrMore()])
    return cst.replace_node(source, scope, call_with, make)


# ----------------------------------------------------------------------------- check helpers


def perturb_norm_gains(model, seed=1):
    """Move every RMSNorm gain away from 1, as training would, so a missing norm cannot hide."""
    from picochat.gpt import RMSNorm

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, RMSNorm):
                module.weight.copy_(1.0 + 0.3 * torch.randn(module.weight.shape, generator=g))
    return model


def random_tokens(config, batch, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, config.vocab_size, (batch, length), generator=g)
    return ids


def rope_tables(model, length, start=0):
    """cos/sin tables computed here, independent of the candidate's helper."""
    D = model.config.n_embd // model.config.n_head
    inv_freq = 1.0 / (model.config.rope_base ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    angles = torch.outer(torch.arange(start, start + length, dtype=torch.float32), inv_freq)
    return angles.cos()[None, None], angles.sin()[None, None]


def rotate(x, cos, sin):
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def reference_attention(attn, x, cos, sin, attn_mask=None):
    """Causal self-attention computed one head at a time on that head's slice of channels:
    QK-normalised, rotated, scaled by 1/sqrt(head_dim), projected by c_proj."""
    B, T, C = x.shape
    H = attn.n_head
    D = C // H

    def rms(t, norm):
        return t * torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + 1e-6) * norm.weight

    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if attn_mask is not None:
        allowed = allowed & attn_mask[:, None, :]
    heads = []
    for h in range(H):
        rows = slice(h * D, (h + 1) * D)
        q = x @ attn.c_q.weight[rows].T
        k = x @ attn.c_k.weight[rows].T
        v = x @ attn.c_v.weight[rows].T
        q = rotate(rms(q, attn.q_norm), cos[0, 0], sin[0, 0])
        k = rotate(rms(k, attn.k_norm), cos[0, 0], sin[0, 0])
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        scores = scores.masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v)
    return torch.cat(heads, dim=-1) @ attn.c_proj.weight.T


def assert_attention_matches_reference(impls=("explicit", "sdpa"), batch=2, length=12, with_mask=True):
    for impl in impls:
        model = perturb_norm_gains(tiny_model(attn_impl=impl)).eval()
        attn = model.blocks[0].attn
        x = torch.randn(batch, length, model.config.n_embd, generator=torch.Generator().manual_seed(3))
        cos, sin = rope_tables(model, length)
        masks = [None]
        if with_mask:
            mask = torch.ones(batch, length, dtype=torch.bool)
            mask[0, length - 3:] = False
            mask[-1, 4] = False
            masks.append(mask)
        for mask in masks:
            with torch.no_grad():
                got = attn(x, cos, sin, attn_mask=mask)
                want = reference_attention(attn, x, cos, sin, mask)
            assert got.shape == want.shape, f"{impl}: attention output {tuple(got.shape)}, expected {tuple(want.shape)}"
            err = (got - want).abs().max().item()
            assert err < 1e-4, f"{impl} attention{' with padding mask' if mask is not None else ''} differs " \
                               f"from a per-head reference by {err:.3g}"


# ----------------------------------------------------------------------------- 4. causal mask diagonal

TRIL = call("tril")


@edit("causal-mask-diagonal.off-by-one", file=GPT_FILE)
def _(source):
    source = cst.drop_comments_above(source, EXPLICIT, TRIL)  # it says which keys a query may see
    return replace_arg(source, EXPLICIT, TRIL, "diagonal", "T_k - T_q + 1")


@edit("causal-mask-diagonal.diagonal-one", file=GPT_FILE)
def _(source):
    source = cst.drop_comments_above(source, EXPLICIT, TRIL)
    return replace_arg(source, EXPLICIT, TRIL, "diagonal", "1")


@edit("causal-mask-diagonal.sdpa-not-causal", file=GPT_FILE)
def _(source):
    return replace_arg(source, SDPA, call("scaled_dot_product_attention"), "is_causal", "False")


@check("causal-mask-diagonal")
def _():
    """No prediction may depend on a later token, on either attention path, in a full pass
    and when decoding with a KV cache."""
    from picochat.engine import KVCache

    for impl in ("explicit", "sdpa"):
        model = tiny_model(attn_impl=impl).eval()
        T = 16
        idx = random_tokens(model.config, 2, T)
        with torch.no_grad():
            base = model(idx)
            for t in (1, 7, T - 1):
                changed = idx.clone()
                changed[:, t] = (changed[:, t] + 1) % model.config.vocab_size
                changed[changed == model.config.pad_id] = 3
                out = model(changed)
                leak = (out[:, :t] - base[:, :t]).abs().max().item()
                assert leak < 1e-5, f"{impl}: changing the token at {t} changes earlier predictions by {leak:.3g}"
            c = model.config
            cache = KVCache(c.n_layer, 2, c.n_head, c.sequence_len, c.n_embd // c.n_head, "cpu")
            steps = torch.cat([model(idx[:, :5], kv_cache=cache)] +
                              [model(idx[:, i:i + 1], kv_cache=cache) for i in range(5, T)], dim=1)
            err = (steps - base).abs().max().item()
            assert err < 1e-4, f"{impl}: decoding with a KV cache differs from the full pass by {err:.3g}"


# ----------------------------------------------------------------------------- 5. attention scores not scaled



@edit("attention-unscaled.scale-dropped", file=GPT_FILE)
def _(source):
    source = replace_statement(source, EXPLICIT, m.Assign(targets=[m.AssignTarget(target=m.Name("scores"))],
                                                          value=m.BinaryOperation()),
                               "scores = q @ k.transpose(-2, -1)")
    # the scale, and the import that computed it, would be left unread
    source = cst.remove_statement(source, EXPLICIT, m.Assign(targets=[m.AssignTarget(target=m.Name("scale"))]))
    return cst.remove_unused_import(source, "math")


@edit("attention-unscaled.divided-by-head-dim", file=GPT_FILE)
def _(source):
    source = cst.replace_node(source, EXPLICIT, m.Call(func=m.Attribute(value=m.Name("math"), attr=m.Name("sqrt"))),
                              lambda node: node.args[0].value)
    return cst.remove_unused_import(source, "math")


@check("attention-unscaled")
def _():
    """Both attention paths compute softmax(q k^T / sqrt(head_dim)) v, head by head."""
    assert_attention_matches_reference(with_mask=False)


# ----------------------------------------------------------------------------- 54. softmax before cross-entropy


@edit("softmax-before-cross-entropy.inside-loss", file=GPT_FILE)
def _(source):
    return cst.replace_node(
        source, "GPT.forward",
        m.Call(func=m.Attribute(value=m.Name("logits"), attr=m.Name("view"))),
        lambda node: cst.parse_expression("logits.softmax(dim=-1).view(-1, logits.size(-1))"),
    )


@edit("softmax-before-cross-entropy.model-output", file=GPT_FILE)
def _(source):
    return cst.replace_node(
        source, "GPT.forward",
        m.Assign(targets=[m.AssignTarget(target=m.Name("logits"))]),
        lambda node: node.with_changes(value=cst.parse_expression("F.softmax(self.lm_head(x).float(), dim=-1)")),
    )


@check("softmax-before-cross-entropy")
def _():
    """The loss is the cross-entropy of the logits: when the model puts almost all its
    probability on the targets the loss must be near zero."""
    model = tiny_model().eval()
    idx = random_tokens(model.config, 2, 10)
    with torch.no_grad():
        model.lm_head.weight.mul_(200.0)
        targets = model(idx).argmax(dim=-1)
        loss = model(idx, targets=targets).item()
    assert loss < 0.05, f"loss {loss:.3f} on targets the model predicts with near certainty (expected ~0)"


# ----------------------------------------------------------------------------- 10. RoPE not applied

ROTARY = call("apply_rotary")
QK_NORM = call("q_norm")


@edit("rope-missing.deleted", file=GPT_FILE)
def _(source):
    # the comment above the QK norm explains why it comes before the rotation that is gone
    source = cst.drop_comments_above(source, ATTN, QK_NORM)
    return cst.remove_statement(source, ATTN, ROTARY)


@edit("rope-missing.queries-only", file=GPT_FILE)
def _(source):
    return replace_statement(source, ATTN, ROTARY, "q = apply_rotary(q, cos, sin)")


@check("rope-missing")
def _():
    """A one-layer model must tell the order of earlier tokens apart: swapping two of them
    changes the prediction at the last position."""
    model = perturb_norm_gains(tiny_model(n_layer=1)).eval()
    idx = random_tokens(model.config, 1, 10)
    idx[0, 2], idx[0, 6] = 5, 9
    swapped = idx.clone()
    swapped[0, 2], swapped[0, 6] = 9, 5
    with torch.no_grad():
        diff = (model(idx)[0, -1] - model(swapped)[0, -1]).abs().max().item()
    assert diff > 1e-4, f"swapping two earlier tokens changes the last logits by {diff:.2g}: positions are not encoded"


# ----------------------------------------------------------------------------- 11. QK norm missing


@edit("qk-norm-missing.deleted", file=GPT_FILE)
def _(source):
    return cst.remove_statement(source, ATTN, QK_NORM)


@edit("qk-norm-missing.queries-only", file=GPT_FILE)
def _(source):
    return replace_statement(source, ATTN, QK_NORM, "q = self.q_norm(q)")


@check("qk-norm-missing")
def _():
    """With queries and keys RMS-normalised, attention does not depend on the scale of the
    query and key projections."""
    for impl in ("explicit", "sdpa"):
        model = perturb_norm_gains(tiny_model(attn_impl=impl)).eval()
        attn = model.blocks[0].attn
        x = torch.randn(2, 12, model.config.n_embd, generator=torch.Generator().manual_seed(3))
        cos, sin = rope_tables(model, 12)
        assert_qk_scale_invariant(attn, lambda: attn(x, cos, sin), f"{impl}: ")


# ----------------------------------------------------------------------------- 7. positions on the wrong device


@edit("position-device.arange-no-device", file=GPT_FILE)
def _(source):
    return cst.replace_node(
        source, "rotary_cos_sin", call("arange"),
        lambda node: node.with_changes(args=[a for a in node.args if not (a.keyword and a.keyword.value == "device")]),
    )


@edit("position-device.inv-freq-attribute", file=GPT_FILE)
def _(source):
    return replace_statement(source, "GPT.__init__", call("register_buffer"), "self.inv_freq = inv_freq")


@check("position-device")
def _():
    """Every tensor of the forward pass lives on the model's device: build on the CPU, move
    the model to the meta device and run it there (full pass, padding mask, KV cache)."""
    from picochat.engine import KVCache

    for impl in ("explicit", "sdpa"):
        model = tiny_model(attn_impl=impl).eval().to("meta")
        c = model.config
        idx = torch.zeros(2, 8, dtype=torch.long, device="meta")
        mask = torch.ones(2, 8, dtype=torch.bool, device="meta")
        logits = model(idx, attn_mask=mask)
        assert logits.device.type == "meta" and logits.shape == (2, 8, c.vocab_size)
        cache = KVCache(c.n_layer, 2, c.n_head, c.sequence_len, c.n_embd // c.n_head, "meta")
        model(idx, kv_cache=cache)
        assert model(idx[:, :1], kv_cache=cache).device.type == "meta"


# ----------------------------------------------------------------------------- 20. RMSNorm without epsilon

PLUS_EPS = m.BinaryOperation(operator=m.Add(), right=m.Attribute(value=m.Name("self"), attr=m.Name("eps")))


@edit("rmsnorm-no-eps.deleted", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, "RMSNorm.forward", PLUS_EPS, lambda node: node.left)


@edit("rmsnorm-no-eps.outside-rsqrt", file=GPT_FILE)
def _(source):
    return cst.replace_node(
        source, "RMSNorm.forward", m.Call(func=m.Attribute(attr=m.Name("rsqrt")), args=[m.Arg(value=PLUS_EPS)]),
        lambda node: cst_.BinaryOperation(
            left=node.with_changes(args=[node.args[0].with_changes(value=node.args[0].value.left)]),
            operator=cst_.Add(whitespace_before=cst_.SimpleWhitespace(" "), whitespace_after=cst_.SimpleWhitespace(" ")),
            right=node.args[0].value.right,
        ),
    )


@check("rmsnorm-no-eps")
def _():
    """RMSNorm maps a zero vector (the padding embedding) to zero, with finite gradients, and
    normalises ordinary vectors as x / sqrt(mean(x^2) + eps) * gain."""
    from picochat.gpt import RMSNorm

    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    x = torch.randn(3, 5, 16) * 7.0
    expected = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6) * norm.weight
    err = (norm(x) - expected).abs().max().item()
    assert err < 1e-4, f"RMSNorm differs from x / rms(x) * gain by {err:.3g}"
    zero = torch.zeros(2, 16, requires_grad=True)
    out = norm(zero)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(zero.grad).all(), "RMSNorm of a zero vector is not finite"
    # a padded batch through the whole model: finite loss and gradients
    model = tiny_model(pad_id=1)
    idx = random_tokens(model.config, 2, 12)
    idx[1, 8:] = 1
    targets = idx.roll(-1, dims=1)
    targets[1, 7:] = -1
    mask = idx != 1
    loss = model(idx, targets, attn_mask=mask)
    loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert torch.isfinite(loss) and not bad, f"padded batch: loss {loss.item()}, non-finite gradients in {bad[:3]}"


# ----------------------------------------------------------------------------- 6. -1e9 instead of -inf


@edit("mask-minus-1e9.minus-1e9", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, EXPLICIT, m.Call(func=m.Name("float"), args=[m.Arg(value=m.SimpleString())]),
                            lambda node: cst.parse_expression("-1e9"))


@edit("mask-minus-1e9.float32-min", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, EXPLICIT, m.Call(func=m.Name("float"), args=[m.Arg(value=m.SimpleString())]),
                            lambda node: cst.parse_expression("torch.finfo(torch.float32).min"))


@check("mask-minus-1e9")
def _():
    """Attention runs in half precision (as under fp16 autocast on CUDA) and agrees with fp32."""
    for impl in ("explicit", "sdpa"):
        model = perturb_norm_gains(tiny_model(attn_impl=impl)).eval()
        attn = model.blocks[0].attn
        x = torch.randn(2, 12, model.config.n_embd, generator=torch.Generator().manual_seed(3))
        cos, sin = rope_tables(model, 12)
        mask = torch.ones(2, 12, dtype=torch.bool)
        mask[0, 9:] = False
        with torch.no_grad():
            want = attn(x, cos, sin, attn_mask=mask)
            got = attn.half()(x.half(), cos.half(), sin.half(), attn_mask=mask).float()
        err = (got - want).abs().max().item()
        assert err < 2e-2, f"{impl}: fp16 attention differs from fp32 by {err:.3g}"


# ----------------------------------------------------------------------------- 38. heads not separated


@edit("heads-not-separated.merge-without-transpose", file=GPT_FILE)
def _(source):
    merge = m.Call(func=m.Attribute(value=m.Call(func=m.Attribute(attr=m.Name("transpose"))), attr=m.Name("contiguous")))
    source = cst.drop_comments_above(source, ATTN, merge)  # it spells out the shapes the transpose makes
    return cst.replace_node(source, ATTN, merge, lambda node: cst.parse_expression("y.contiguous()"))


@edit("heads-not-separated.split-without-transpose", file=GPT_FILE)
def _(source):
    source = cst.drop_comments_above(source, ATTN, m.Attribute(value=m.Name("self"), attr=m.Name("c_q")))
    for name in ("c_q", "c_k", "c_v"):
        source = cst.replace_node(
            source, ATTN,
            m.Call(func=m.Attribute(value=m.Call(func=m.Attribute(value=m.Call(
                func=m.Attribute(value=m.Name("self"), attr=m.Name(name))), attr=m.Name("view"))),
                attr=m.Name("transpose"))),
            lambda node, name=name: cst.parse_expression(f"self.{name}(x).view(B, self.n_head, T, self.head_dim)"),
        )
    return source


@check("heads-not-separated")
def _():
    """Each head attends with its own slice of channels, position by position, on both paths."""
    assert_attention_matches_reference(with_mask=False)


# ----------------------------------------------------------------------------- 39. no output projection

RETURN_PROJ = m.Return(value=m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name("c_proj"))))


@edit("attention-no-out-proj.returned-unprojected", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, ATTN, RETURN_PROJ, lambda node: node.with_changes(value=node.value.args[0].value))


@check("attention-no-out-proj")
def _():
    """The attention output goes through the output projection: it matches the reference
    (which ends in c_proj), and c_proj's weight receives a gradient in training."""
    assert_attention_matches_reference(impls=("explicit",), with_mask=False)
    model = tiny_model().train()
    idx = random_tokens(model.config, 2, 12)
    model(idx, targets=idx.roll(-1, dims=1)).backward()
    grad = model.blocks[0].attn.c_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0, "the attention output projection gets no gradient"


# ----------------------------------------------------------------------------- 34 + 35. residual and norm placement

ATTN_RESIDUAL = m.Assign(targets=[m.AssignTarget(target=m.Name("x"))],
                         value=m.BinaryOperation(right=m.Call(func=m.Attribute(attr=m.Name("attn")))))
MLP_RESIDUAL = m.Assign(targets=[m.AssignTarget(target=m.Name("x"))],
                        value=m.BinaryOperation(right=m.Call(func=m.Attribute(attr=m.Name("mlp")))))


@edit("residual-before-projection.inside-attention", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, ATTN, RETURN_PROJ,
                            lambda node: cst.parse_statement("return self.c_proj(x + y)").body[0])


@edit("residual-before-projection.projected-stream", file=GPT_FILE)
def _(source):
    source = cst.replace_node(source, ATTN, RETURN_PROJ,
                              lambda node: cst.parse_statement("return self.c_proj(x + y)").body[0])
    return cst.replace_node(source, "Block.forward", ATTN_RESIDUAL, lambda node: node.with_changes(value=node.value.right))


def assert_block_is_pre_norm_residual():
    """A block is x + attn(norm_1(x)) then x + mlp(norm_2(x)): with both branches' output
    projections zeroed it is exactly the identity, and the attention module is the reference."""
    assert_attention_matches_reference(impls=("explicit",), with_mask=False)
    model = perturb_norm_gains(tiny_model()).eval()
    block = model.blocks[0]
    x = 3.0 * torch.randn(2, 10, model.config.n_embd, generator=torch.Generator().manual_seed(5))
    cos, sin = rope_tables(model, 10)
    with torch.no_grad():
        block.attn.c_proj.weight.zero_()
        block.mlp.c_proj.weight.zero_()
        out = block(x, cos, sin)
    err = (out - x).abs().max().item()
    assert err < 1e-5, f"a block whose branches output zero changes the residual stream by {err:.3g}"


@check("residual-before-projection")
def _():
    assert_block_is_pre_norm_residual()


@edit("post-norm.both-sublayers", file=GPT_FILE)
def _(source):
    source = replace_statement(source, "Block.forward", m.Call(func=m.Attribute(attr=m.Name("attn"))),
                               "x = self.norm_1(x + self.attn(x, cos, sin, kv_cache, attn_mask))")
    return replace_statement(source, "Block.forward", m.Call(func=m.Attribute(attr=m.Name("mlp"))),
                             "x = self.norm_2(x + self.mlp(x))")


@edit("post-norm.normed-stream", file=GPT_FILE)
def _(source):
    return replace_statement(source, "Block.forward", m.Call(func=m.Attribute(attr=m.Name("attn"))),
                             "x = self.norm_1(x)\nx = x + self.attn(x, cos, sin, kv_cache, attn_mask)")


@check("post-norm")
def _():
    assert_block_is_pre_norm_residual()


# ----------------------------------------------------------------------------- 36. no dropout in the MLP


@edit("mlp-no-dropout.not-applied", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, "MLP.forward", m.Return(value=call("dropout")),
                            lambda node: node.with_changes(value=node.value.args[0].value))


@edit("mlp-no-dropout.identity", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, "MLP.__init__", call("Dropout"), lambda node: cst.parse_expression("nn.Identity()"))


@check("mlp-no-dropout")
def _():
    """With dropout configured, the MLP is stochastic in training mode and deterministic in eval."""
    from picochat.gpt import MLP

    torch.manual_seed(0)
    mlp = MLP(tiny_config(dropout=0.5))
    x = torch.randn(4, 8, mlp.c_fc.in_features)
    with torch.no_grad():
        mlp.train()
        a, b = mlp(x), mlp(x)
        mlp.eval()
        c, d = mlp(x), mlp(x)
    assert not torch.equal(a, b), "the MLP gives the same output twice in training mode: no dropout"
    assert torch.equal(c, d), "the MLP is not deterministic in eval mode"
    zeros = (a == 0).float().mean().item()
    assert 0.3 < zeros < 0.7, f"{zeros:.0%} of the MLP's outputs are zero at p=0.5"


# ----------------------------------------------------------------------------- 37. no context-length check

CONTEXT_ASSERT = m.Assert()


@edit("no-context-check.deleted", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, "GPT.hidden_states", CONTEXT_ASSERT, lambda node: cst_.RemovalSentinel.REMOVE)


@edit("no-context-check.ignores-cache", file=GPT_FILE)
def _(source):
    return cst.replace_node(
        source, "GPT.hidden_states", m.Assert(test=m.Comparison(left=m.BinaryOperation())),
        lambda node: node.with_changes(test=node.test.with_changes(left=node.test.left.right)),
    )


@check("no-context-check")
def _():
    """Running past the model's context is refused with a clear error (AssertionError or
    ValueError), in a full pass and when a KV cache is already full."""
    from picochat.engine import KVCache

    model = tiny_model().eval()
    c = model.config
    too_long = random_tokens(c, 1, c.sequence_len + 1)
    try:
        with torch.no_grad():
            model(too_long)
    except (AssertionError, ValueError):
        pass
    else:
        raise AssertionError(f"a sequence of {c.sequence_len + 1} tokens ran through a model of context {c.sequence_len}")
    cache = KVCache(c.n_layer, 1, c.n_head, c.sequence_len, c.n_embd // c.n_head, "cpu")
    with torch.no_grad():
        model(too_long[:, :c.sequence_len], kv_cache=cache)
        try:
            model(too_long[:, -1:], kv_cache=cache)
        except (AssertionError, ValueError):
            pass
        else:
            raise AssertionError("a token past the context ran with a full KV cache")


# ----------------------------------------------------------------------------- 33. padding mask does not broadcast


@edit("attn-mask-broadcast.heads-axis", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, EXPLICIT, m.Subscript(value=m.Name("attn_mask")),
                            lambda node: cst.parse_expression("attn_mask[:, None, :]"))


@edit("attn-mask-broadcast.query-axis", file=GPT_FILE)
def _(source):
    return cst.replace_node(source, EXPLICIT, m.Subscript(value=m.Name("attn_mask")),
                            lambda node: cst.parse_expression("attn_mask[:, None, :, None]"))


@check("attn-mask-broadcast")
def _():
    """With a padding mask, each sequence's queries ignore that sequence's padded keys, on both
    paths, for a batch as large as the number of heads (where a wrong broadcast is silent)."""
    for impl in ("explicit", "sdpa"):
        model = perturb_norm_gains(tiny_model(attn_impl=impl)).eval()
        H = model.config.n_head
        attn = model.blocks[0].attn
        x = torch.randn(H, 12, model.config.n_embd, generator=torch.Generator().manual_seed(3))
        cos, sin = rope_tables(model, 12)
        mask = torch.ones(H, 12, dtype=torch.bool)
        for b in range(H):
            mask[b, 12 - 2 * (b + 1):] = False
        mask[1, 3] = False
        with torch.no_grad():
            got = attn(x, cos, sin, attn_mask=mask)
            want = reference_attention(attn, x, cos, sin, mask)
        real = mask[:, :, None].expand_as(want)
        assert got.shape == want.shape, f"{impl}: output shape {tuple(got.shape)}"
        err = (got - want)[real].abs().max().item()
        assert err < 1e-4, f"{impl}: attention of real tokens with a padding mask is off by {err:.3g}"


# ----------------------------------------------------------------------------- 40. bias in linear layers


def with_bias(source, scope, names):
    for name in names:
        source = cst.replace_node(
            source, scope, m.Assign(targets=[m.AssignTarget(target=m.Attribute(attr=m.Name(name)))]),
            lambda node: node.with_changes(value=node.value.with_changes(args=[
                a.with_changes(value=cst.parse_expression("True")) if a.keyword and a.keyword.value == "bias" else a
                for a in node.value.args])),
        )
    return source


@edit("linear-bias.attention", file=GPT_FILE)
def _(source):
    return with_bias(source, "CausalSelfAttention.__init__", ("c_q", "c_k", "c_v"))


@edit("linear-bias.mlp", file=GPT_FILE)
def _(source):
    return with_bias(source, "MLP.__init__", ("c_fc", "c_proj"))


@check("linear-bias")
def _():
    """Every linear layer of the model is bias-free: it maps zero to zero."""
    model = tiny_model()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            with torch.no_grad():
                out = module(torch.zeros(1, module.in_features))
            assert not out.abs().any(), f"{name} adds a bias"
