"""Bugs in the data pipeline (picochat/dataloader.py, dataset.py, tokenizer.py, corpus.py),
inference (picochat/engine.py) and evaluation (scripts/base_eval.py)."""

import libcst as cst_
import libcst.matchers as m
import torch

from bug_catalog import cst
from bug_catalog.registry import check, edit
from bug_catalog.support import tiny_model

LOADER = "picochat/dataloader.py"
DATASET = "picochat/dataset.py"
ENGINE = "picochat/engine.py"
GPT_FILE = "picochat/gpt.py"
TOKENIZER = "picochat/tokenizer.py"
CORPUS = "picochat/corpus.py"
EVAL = "scripts/base_eval.py"


def _set_keyword(source, scope, keyword, code):
    """Give the one keyword argument `keyword=` in `scope` the value `code`."""
    return cst.replace_node(source, scope, m.Arg(keyword=m.Name(keyword)),
                            lambda node: node.with_changes(value=cst.parse_expression(code)))


def _drop_keyword(node, keyword):
    """The call `node` without its `keyword=` argument, commas kept as they were around it."""
    args = list(node.args)
    index = next(i for i, a in enumerate(args) if m.matches(a, m.Arg(keyword=m.Name(keyword))))
    removed = args.pop(index)
    if index == len(args) and args:
        args[-1] = args[-1].with_changes(comma=removed.comma)
    return node.with_changes(args=args)


def _statement(code):
    return cst.parse_statement(code).body[0]


# ---------------------------------------------------------------------------
# helpers shared by the checks

CONVERSATIONS = [
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! Ask me."}],
    [{"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "3 plus 4 is 7."},
     {"role": "user", "content": "What does a cow say?"}, {"role": "assistant", "content": "A cow says moo."}],
    [{"role": "user", "content": "Count to 3."}, {"role": "assistant", "content": "1, 2, 3."}],
    [{"role": "user", "content": "My friend Mia has a cat."},
     {"role": "assistant", "content": "How nice! Mia must love the cat."},
     {"role": "user", "content": "Who has the cat?"}, {"role": "assistant", "content": "Your friend Mia has the cat."}],
]


def _byte_tokenizer():
    from picochat.tokenizer import Tokenizer

    return Tokenizer([])


class _BigramStub(torch.nn.Module):
    """A language model whose logits depend on the current token only: a fixed random table."""

    def __init__(self, vocab, sequence_len):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(sequence_len=sequence_len, vocab_size=vocab)
        g = torch.Generator().manual_seed(0)
        table = torch.randn(vocab, vocab, generator=g)
        table[torch.arange(vocab), (torch.arange(vocab) + 1) % vocab] += 2.0
        self.table = table

    def forward(self, idx, targets=None, **kwargs):
        return self.table[idx]


# ---------------------------------------------------------------------------
# 48: targets not shifted against inputs

@edit("targets-unshifted.windows", file=LOADER)
def _(source):
    return cst.replace_node(source, "TokenWindows.__getitem__", m.Return(),
                            lambda node: _statement("return chunk[:-1], chunk[:-1]"))


@edit("targets-unshifted.chat", file=LOADER)
def _(source):
    return cst.replace_with_code(source, "ChatDataset.__getitem__",
                                 m.Call(func=m.Name("zip")), "zip(ids[:-1], mask[:-1])")


@check("targets-unshifted")
def _():
    """Each target is the token that follows its input position, for pretraining windows
    (train and validation crops) and for chat examples."""
    from picochat.dataloader import ChatDataset, TokenWindows

    tokens = torch.arange(300)
    for random_crop in (True, False):
        windows = TokenWindows(tokens, seq_len=8, crop_margin=4, random_crop=random_crop, seed=0)
        for i in range(len(windows)):
            inputs, targets = windows[i]
            assert torch.equal(torch.as_tensor(targets), torch.as_tensor(inputs) + 1), (
                f"window {i} (random_crop={random_crop}): inputs {inputs.tolist()} targets {targets.tolist()}")
    tokenizer = _byte_tokenizer()
    chats = ChatDataset(CONVERSATIONS, tokenizer, seq_len=256)
    for i, conversation in enumerate(CONVERSATIONS):
        ids, mask = tokenizer.render_conversation(conversation)
        inputs, targets = chats[i]
        inputs, targets = list(map(int, inputs)), list(map(int, targets))
        assert inputs == ids[:-1], f"chat {i}: inputs are not the conversation minus its last token"
        expected = [tok if keep else -1 for tok, keep in zip(ids[1:], mask[1:])]
        assert targets == expected, f"chat {i}: targets {targets[:12]}... expected {expected[:12]}..."


# ---------------------------------------------------------------------------
# 8: data not shuffled

@edit("unshuffled.sampler", file=LOADER)
def _(source):
    return _set_keyword(source, "pretraining_loader", "shuffle", "False")


@edit("unshuffled.same-order-every-epoch", file=LOADER)
def _(source):
    return cst.remove_statement(source, "infinite_batches", m.Call(
        func=m.Attribute(value=m.Attribute(attr=m.Name("sampler")), attr=m.Name("set_epoch"))))


@check("unshuffled")
def _():
    """The training loader visits windows in a random order, and a different one each epoch."""
    from picochat.common import SINGLE_PROCESS
    from picochat.dataloader import infinite_batches, pretraining_loader

    seq_len, batch_size = 8, 4
    window = seq_len + 1 + 8
    tokens = torch.arange(64 * window)
    loader = pretraining_loader(tokens, seq_len, batch_size, SINGLE_PROCESS, seed=0, train=True)
    orders = {0: [], 1: []}
    for epoch, inputs, _ in infinite_batches(loader):
        if epoch > 1:
            break
        orders[epoch] += (inputs[:, 0] // window).tolist()
    first, second = orders[0], orders[1]
    assert first != sorted(first), f"epoch 0 visits windows in storage order: {first[:12]}..."
    assert first != second, f"epochs 0 and 1 visit windows in the same order: {first[:12]}..."


# ---------------------------------------------------------------------------
# 9: KV-cache position not incremented

@edit("kv-position.assigned", file=ENGINE)
def _(source):
    return cst.replace_node(source, "KVCache.advance", m.AugAssign(),
                            lambda node: _statement("self.pos = num_tokens"))


@edit("kv-position.never-advanced", file=GPT_FILE)
def _(source):
    advance = m.Call(func=m.Attribute(attr=m.Name("advance")))
    return cst.replace_node(source, "GPT.hidden_states",
                            m.If(body=m.IndentedBlock(body=[m.SimpleStatementLine(body=[m.Expr(advance)])])),
                            lambda node: cst_.RemovalSentinel.REMOVE)


@check("kv-position")
def _():
    """Logits computed token by token through the KV cache equal those of one full forward pass."""
    from picochat.engine import Engine

    model = tiny_model().eval()
    torch.manual_seed(1)
    ids = torch.randint(2, 64, (1, 14))
    with torch.no_grad():
        full = model(ids)
        cache = Engine(model, None).new_cache(batch_size=1)
        prompt = model(ids[:, :5], kv_cache=cache)
        assert torch.allclose(prompt, full[:, :5], atol=1e-4), "cached prompt logits differ from the full pass"
        for t in range(5, ids.size(1)):
            step = model(ids[:, t:t + 1], kv_cache=cache)[:, -1]
            gap = (step - full[:, t]).abs().max().item()
            assert gap < 1e-4, f"cached logits at position {t} differ from the full pass by {gap:.3g}"


# ---------------------------------------------------------------------------
# 49: temperature 0 divides by zero

@edit("temperature-zero.no-greedy-branch", file=ENGINE)
def _(source):
    return cst.replace_node(source, "sample_next_token", m.If(test=m.Comparison(left=m.Name("temperature"))),
                            lambda node: cst_.RemovalSentinel.REMOVE)


@edit("temperature-zero.divided-first", file=ENGINE)
def _(source):
    body = m.IndentedBlock(body=[
        m.SimpleStatementLine(body=[m.Expr(m.SimpleString())]),
        m.If(test=m.Comparison(left=m.Name("temperature"))),
        m.SimpleStatementLine(body=[m.Assign(value=m.BinaryOperation(operator=m.Divide()))]),
        m.ZeroOrMore(),
    ])

    def swap(node):
        statements = list(node.body)
        statements[1], statements[2] = statements[2], statements[1]
        return node.with_changes(body=statements)

    return cst.replace_node(source, "sample_next_token", body, swap)


@check("temperature-zero")
def _():
    """Temperature 0 is greedy decoding: the argmax of each row, whatever the signs of the logits."""
    from picochat.engine import sample_next_token

    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0, 0.0], [-2.0, -0.5, -3.0, -1.0, -4.0], [1.0, 0.2, 0.3, 4.0, 2.0]])
    out = sample_next_token(logits, temperature=0.0)
    assert out.view(-1).tolist() == [1, 1, 3], f"greedy picks {out.view(-1).tolist()}, expected [1, 1, 3]"
    out = sample_next_token(logits, temperature=0.0, top_k=2)
    assert out.view(-1).tolist() == [1, 1, 3], f"greedy with top_k picks {out.view(-1).tolist()}"


# ---------------------------------------------------------------------------
# 50: top-k larger than the vocabulary

@edit("top-k.unclamped", file=ENGINE)
def _(source):
    return cst.replace_with_code(source, "sample_next_token", m.Call(func=m.Name("min")), "top_k")


@edit("top-k.clamp-unused", file=ENGINE)
def _(source):
    topk = m.Call(func=m.Attribute(attr=m.Name("topk")))
    source = cst.replace_node(source, "sample_next_token", topk, lambda node: node.with_changes(
        args=[a.with_changes(value=cst_.Name("top_k")) if m.matches(a.value, m.Name("k")) else a
              for a in node.args]))
    # the clamped k, now unread, is what a linter would point at
    return cst.remove_statement(source, "sample_next_token", m.Assign(targets=[m.AssignTarget(m.Name("k"))]))


@check("top-k")
def _():
    """top_k above the vocabulary keeps every token; a small top_k keeps only the k largest."""
    from picochat.engine import sample_next_token

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, generator=g)
    out = sample_next_token(logits, temperature=1.0, top_k=50, generator=g)
    assert out.shape == (3, 1) and ((out >= 0) & (out < 10)).all(), f"bad sample {out.tolist()}"
    top2 = torch.topk(logits, 2, dim=-1).indices
    for _ in range(20):
        out = sample_next_token(logits, temperature=1.0, top_k=2, generator=g)
        assert (out == top2).any(dim=-1).all(), "top_k=2 sampled a token outside the two largest logits"


# ---------------------------------------------------------------------------
# 15: padding tokens counted in the loss

@edit("pad-in-loss.collate", file=LOADER)
def _(source):
    minus_one = m.Arg(value=m.UnaryOperation(operator=m.Minus(), expression=m.Integer("1")))
    return cst.replace_node(source, "pad_collate", minus_one,
                            lambda node: node.with_changes(value=cst_.Name("pad_id")))


@edit("pad-in-loss.masked-as-pad", file=LOADER)
def _(source):
    minus_one = m.UnaryOperation(operator=m.Minus(), expression=m.Integer("1"))
    return cst.replace_node(source, "ChatDataset.__getitem__", m.IfExp(orelse=minus_one), lambda node: node.with_changes(
        orelse=cst.parse_expression("self.tokenizer.pad_id")))


@check("pad-in-loss")
def _():
    """The summed loss of a padded chat batch is exactly the loss of the assistant tokens of each
    conversation run on its own: padding and prompt positions add nothing."""
    import torch.nn.functional as F

    from picochat.dataloader import ChatDataset, pad_collate

    tokenizer = _byte_tokenizer()
    model = tiny_model(vocab_size=tokenizer.vocab_size, sequence_len=128, pad_id=tokenizer.pad_id).eval()
    chats = ChatDataset(CONVERSATIONS, tokenizer, seq_len=128)
    inputs, targets, attn_mask = pad_collate([chats[i] for i in range(len(chats))], tokenizer.pad_id)
    expected, count = 0.0, 0
    with torch.no_grad():
        for conversation in CONVERSATIONS:
            ids, mask = tokenizer.render_conversation(conversation)
            logits = model(torch.tensor([ids[:-1]]))[0]
            keep = torch.tensor(mask[1:], dtype=torch.bool)
            expected += F.cross_entropy(logits[keep], torch.tensor(ids[1:])[keep], reduction="sum").item()
            count += int(keep.sum())
        got = model(inputs, targets, attn_mask=attn_mask, loss_reduction="sum").item()
    assert abs(got - expected) < 1e-3 * max(1.0, expected), (
        f"batch loss {got:.3f} nats, expected {expected:.3f} over the {count} assistant tokens only")


# ---------------------------------------------------------------------------
# 42: collate does not pad

@edit("no-padding.default-collate", file=LOADER)
def _(source):
    source = cst.replace_node(source, "chat_loader", m.Call(func=m.Name("DataLoader")),
                              lambda node: _drop_keyword(node, "collate_fn"))
    return cst.remove_unused_import(source, "functools")


@edit("no-padding.first-length", file=LOADER)
def _(source):
    return cst.replace_with_code(source, "pad_collate", m.Call(func=m.Name("max")), "len(batch[0][0])")


@check("no-padding")
def _():
    """A chat loader over conversations of different lengths yields right-padded batches."""
    from picochat.dataloader import ChatDataset, chat_loader

    tokenizer = _byte_tokenizer()
    conversations = [CONVERSATIONS[i] for i in (2, 1, 0, 3, 0, 3, 2, 1)]
    loader = chat_loader(conversations, tokenizer, 256, batch_size=4, seed=0, shuffle=False)
    chats = ChatDataset(conversations, tokenizer, 256)
    index = 0
    for batch in loader:
        inputs, targets = batch[0], batch[1]
        longest = max(len(chats[index + row][0]) for row in range(inputs.size(0)))
        assert inputs.shape == (4, longest), f"batch shape {tuple(inputs.shape)}, longest item {longest}"
        for row in range(inputs.size(0)):
            x, y = chats[index + row]
            assert inputs[row, :len(x)].tolist() == list(x) and (inputs[row, len(x):] == tokenizer.pad_id).all()
            assert targets[row, :len(y)].tolist() == list(y)
        index += inputs.size(0)
    assert index == len(conversations)


# ---------------------------------------------------------------------------
# 43: tokenizer encode/decode mismatch with special tokens

@edit("special-tokens.ids-overlap-merges", file=TOKENIZER)
def _(source):
    return cst.move_statement(source, "Tokenizer.__init__",
                              m.Assign(targets=[m.AssignTarget(target=m.Name("first_special"))]),
                              after=m.Assign(targets=[m.AssignTarget(target=m.Attribute(attr=m.Name("_bytes")))]))


@edit("special-tokens.not-in-decode-table", file=TOKENIZER)
def _(source):
    return cst.remove_statement(source, "Tokenizer.__init__", m.AugAssign(target=m.Attribute(attr=m.Name("_bytes"))))


@check("special-tokens")
def _():
    """Special tokens have ids of their own inside the vocabulary, decode to their strings, and
    ordinary text round-trips without ever producing them."""
    from picochat.tokenizer import SPECIAL_TOKENS, Tokenizer

    texts = ["Once upon a time there was a little cat named Mia.", "Mia said meow to a big dog.",
             "Today Leo did some sums. 3 plus 4 is 7."] * 3
    tokenizer = Tokenizer.train(texts, 256 + len(SPECIAL_TOKENS) + 30)
    special = [tokenizer.special_id(name) for name in SPECIAL_TOKENS]
    assert len(set(special)) == len(SPECIAL_TOKENS)
    assert all(0 <= i < tokenizer.vocab_size for i in special), f"special ids {special} outside the vocabulary"
    ordinary = set()
    for text in texts + ["<|bos|> is plain text here"]:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text, f"round trip of {text!r} gave {tokenizer.decode(ids)!r}"
        ordinary.update(ids)
    assert not ordinary & set(special), f"encode() produced special ids {sorted(ordinary & set(special))}"
    for name, i in zip(SPECIAL_TOKENS, special):
        assert tokenizer.decode([i]) == name, f"{name} (id {i}) decodes to {tokenizer.decode([i])!r}"
        assert tokenizer.is_special(i)
    ids, _ = tokenizer.render_conversation(CONVERSATIONS[0])
    assert tokenizer.decode(ids) == "<|bos|><|user_start|>Hi!<|user_end|><|assistant_start|>Hello! Ask me.<|assistant_end|>"


# ---------------------------------------------------------------------------
# 45: duplicate examples across train and val

@edit("train-val-overlap.no-dedup", file=DATASET)
def _(source):
    source = cst.remove_statement(source, "split_train_val",
                                  m.Assign(targets=[m.AssignTarget(m.Name("first"))], value=m.Dict()))
    source = cst.replace_node(source, "split_train_val", m.For(target=m.Name("s")),
                              lambda node: cst_.RemovalSentinel.REMOVE)
    return cst.replace_with_code(source, "split_train_val", m.Call(func=m.Name("list"), args=[m.Arg(
        value=m.Call(func=m.Attribute(attr=m.Name("values"))))]), "samples")


@edit("train-val-overlap.train-on-all", file=DATASET)
def _(source):
    return cst.replace_node(
        source, "split_train_val",
        m.Assign(targets=[m.AssignTarget(m.Name("train"))], value=m.ListComp()),
        lambda node: node.with_changes(value=cst_.Name("unique")))


@check("train-val-overlap")
def _():
    """No text lands on both sides of the train/val split, even when the source repeats texts."""
    from picochat.dataset import Sample, split_train_val

    texts = [f"story {i % 37}" for i in range(120)]  # many repeats, like the grammar's short stories
    samples = [Sample(t, -1.0, "fable") for t in texts]
    train, val = split_train_val(samples, 0.2, seed=0)
    train_texts, val_texts = {s.text for s in train}, {s.text for s in val}
    assert val_texts, "empty validation split"
    assert not train_texts & val_texts, f"{len(train_texts & val_texts)} texts are in both splits"
    assert train_texts | val_texts == set(texts)


# ---------------------------------------------------------------------------
# 46: augmentation applied to validation

@edit("val-augmented.loader", file=LOADER)
def _(source):
    return _set_keyword(source, "pretraining_loader", "random_crop", "True")


@edit("val-augmented.eval-script", file=EVAL)
def _(source):
    return _set_keyword(source, "language_model_metrics", "train", "True")


def _eval_windows(loader):
    return [inputs.clone() for inputs, _ in loader]


@check("val-augmented")
def _():
    """Validation data does not depend on the seed or epoch (no random crops), and the eval
    script's metrics are those of the validation loader."""
    from types import SimpleNamespace

    import scripts.base_eval as base_eval
    from picochat.common import SINGLE_PROCESS
    from picochat.dataloader import pretraining_loader

    tokens = torch.arange(32 * 25) % 32
    runs = []
    for seed, epoch in ((0, 0), (1, 0), (0, 3)):
        loader = pretraining_loader(tokens, 16, 4, SINGLE_PROCESS, seed=seed, train=False)
        loader.dataset.set_epoch(epoch)
        runs.append(torch.cat(_eval_windows(loader)))
    assert all(torch.equal(runs[0], r) for r in runs[1:]), "validation batches change with the seed or epoch"
    model = _BigramStub(32, 16)
    corpus = SimpleNamespace(val_tokens=tokens, token_bytes=torch.ones(32, dtype=torch.long))
    bpb, accuracy = base_eval.language_model_metrics(model, corpus, 4, torch.device("cpu"))
    loader = pretraining_loader(tokens, 16, 4, SINGLE_PROCESS, seed=0, train=False)
    nats, count = 0.0, 0
    for inputs, targets in loader:
        nats += torch.nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), reduction="sum").item()
        count += targets.numel()
    expected = nats / count / 0.6931471805599453
    assert abs(bpb - expected) < 1e-4, f"eval script bpb {bpb:.5f}, validation loader gives {expected:.5f}"


# ---------------------------------------------------------------------------
# 17: argmax over the wrong dimension (next-token accuracy)

@edit("argmax-dim.time-axis", file=EVAL)
def _(source):
    argmax = m.Call(func=m.Attribute(value=m.Name("logits"), attr=m.Name("argmax")))
    return cst.replace_with_code(source, "language_model_metrics", argmax, "logits.argmax(dim=1)")


@edit("argmax-dim.flattened", file=EVAL)
def _(source):
    argmax = m.Call(func=m.Attribute(value=m.Name("logits"), attr=m.Name("argmax")))
    return cst.replace_with_code(source, "language_model_metrics", argmax, "logits.argmax()")


@check("argmax-dim")
def _():
    """Next-token accuracy is the fraction of positions whose most likely token is the target."""
    from types import SimpleNamespace

    import scripts.base_eval as base_eval

    tokens = torch.arange(32 * 25) % 32
    model = _BigramStub(32, 16)
    corpus = SimpleNamespace(val_tokens=tokens, token_bytes=torch.ones(32, dtype=torch.long))
    _, accuracy = base_eval.language_model_metrics(model, corpus, 4, torch.device("cpu"))
    predicted = model.table.argmax(dim=-1)
    expected = (predicted == (torch.arange(32) + 1) % 32).float().mean().item()  # every token equally often
    assert abs(accuracy - expected) < 0.02, f"next-token accuracy {accuracy:.3f}, expected {expected:.3f}"


# ---------------------------------------------------------------------------
# 51: accuracy computed over the wrong dimension (classification)

@edit("accuracy-dim.class-axis-0", file=EVAL)
def _(source):
    return _set_keyword(source, "classification_metrics", "dim", "0")


@edit("accuracy-dim.keepdim", file=EVAL)
def _(source):
    argmax = m.Call(func=m.Attribute(value=m.Name("logits"), attr=m.Name("argmax")))
    return cst.replace_with_code(source, "classification_metrics", argmax, "logits.argmax(dim=1, keepdim=True)")


@check("accuracy-dim")
def _():
    """classification_metrics on logits with a known confusion matrix."""
    from scripts.base_eval import classification_metrics

    labels = torch.tensor([0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1])
    predictions = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    logits = torch.nn.functional.one_hot(predictions, 2).float() * 2.0 - 1.0
    metrics = classification_metrics(logits, labels)
    expected = {"accuracy": 10 / 12, "balanced_accuracy": (8 / 9 + 2 / 3) / 2, "rare_class_recall": 2 / 3}
    for key, value in expected.items():
        assert abs(metrics[key] - value) < 1e-4, f"{key}: {metrics[key]:.4f}, expected {value:.4f}"


# ---------------------------------------------------------------------------
# probe bugs (47, 52, 53): a synthetic imbalanced problem for train_probe

def _probe_data(n=1200, dim=16, shift=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < 0.1).long()
    features = torch.randn(n, dim, generator=g) + shift * labels[:, None].float()
    return features, labels


def _recalls(head, features, labels):
    with torch.no_grad():
        predictions = head(features).argmax(dim=1)
    return [(predictions[labels == c] == c).float().mean().item() for c in (0, 1)]


def _without_class_weights(source):
    """Remove the class weights, the counts they come from and the comment above them: nothing
    reads them once the loss is unweighted."""
    for name in ("class_weights", "counts"):
        source = cst.remove_statement(source, "train_probe", m.Assign(targets=[m.AssignTarget(m.Name(name))]))
    return source


@edit("class-imbalance.unweighted", file=EVAL)
def _(source):
    source = cst.replace_node(source, "train_probe", m.Call(func=m.Attribute(attr=m.Name("cross_entropy"))),
                              lambda node: _drop_keyword(node, "weight"))
    return _without_class_weights(source)


@edit("class-imbalance.weights-by-frequency", file=EVAL)
def _(source):
    # the comment above the counts says how the weights should be made
    source = cst.drop_comments_above(source, "train_probe", m.Assign(targets=[m.AssignTarget(m.Name("counts"))]))
    return cst.replace_node(
        source, "train_probe", m.Assign(targets=[m.AssignTarget(m.Name("class_weights"))]),
        lambda node: node.with_changes(value=cst.parse_expression("counts / counts.sum()")))


@check("class-imbalance")
def _():
    """On a 90/10 problem with overlapping classes, the probe's recall on the rare class
    is not sacrificed to accuracy on the common one."""
    from scripts.base_eval import train_probe

    torch.manual_seed(0)
    features, labels = _probe_data(shift=0.3)
    head = train_probe(features, labels, epochs=8, seed=0)
    test_x, test_y = _probe_data(n=4000, shift=0.3, seed=1)
    recalls = _recalls(head, test_x, test_y)
    assert recalls[1] > 0.4 and sum(recalls) / 2 > 0.62, f"held-out recalls (common, rare): {recalls}"


# ---------------------------------------------------------------------------
# 52: BatchNorm running statistics never updated

@edit("batchnorm-stats.momentum-zero", file=EVAL)
def _(source):
    batchnorm = m.Call(func=m.Attribute(attr=m.Name("BatchNorm1d")))
    return cst.replace_node(source, "train_probe", batchnorm, lambda node: node.with_changes(
        args=[*node.args, cst_.Arg(keyword=cst_.Name("momentum"), value=cst_.Float("0.0"),
                                   equal=cst_.AssignEqual(whitespace_before=cst_.SimpleWhitespace(""),
                                                          whitespace_after=cst_.SimpleWhitespace("")))]))


@edit("batchnorm-stats.eval-mode-training", file=EVAL)
def _(source):
    train_call = m.Call(func=m.Attribute(value=m.Name("head"), attr=m.Name("train")))
    return cst.replace_with_code(source, "train_probe", train_call, "head.eval()")


@check("batchnorm-stats")
def _():
    """After training, the probe head in eval mode normalises with statistics of the data it was
    trained on: its outputs match a train-mode pass over the whole training set."""
    import copy

    from scripts.base_eval import train_probe

    torch.manual_seed(0)
    features, labels = _probe_data(n=600)
    features = features * 3.0 + 5.0  # far from BatchNorm's initial running statistics (0, 1)
    head = train_probe(features, labels, epochs=10, seed=0)
    with torch.no_grad():
        eval_out = head.eval()(features)
        batch_out = copy.deepcopy(head).train()(features)
    gap = (eval_out - batch_out).abs().mean().item()
    scale = batch_out.abs().mean().item()
    assert gap < 0.25 * scale, f"eval-mode logits differ from batch-statistics logits by {gap:.3f} (scale {scale:.3f})"


# ---------------------------------------------------------------------------
# 53: loss function does not match the task

@edit("probe-loss.mse-on-labels", file=EVAL)
def _(source):
    return cst.replace_with_code(source, "train_probe", m.Call(func=m.Attribute(attr=m.Name("cross_entropy"))),
                                 "F.mse_loss(logits[:, 1], labels[batch].float())")


@edit("probe-loss.nll-on-logits", file=EVAL)
def _(source):
    return cst.replace_node(source, "train_probe", m.Call(func=m.Attribute(attr=m.Name("cross_entropy"))),
                            lambda node: node.with_changes(func=node.func.with_changes(attr=cst_.Name("nll_loss"))))


@check("probe-loss")
def _():
    """The probe is a two-class classifier: its softmax is a calibrated probability on an easy
    problem, and it separates the classes."""
    from scripts.base_eval import train_probe

    torch.manual_seed(0)
    features, labels = _probe_data(shift=1.5)
    head = train_probe(features, labels, epochs=8, seed=0)
    test_x, test_y = _probe_data(n=4000, shift=1.5, seed=1)
    recalls = _recalls(head, test_x, test_y)
    assert min(recalls) > 0.95, f"held-out recalls (common, rare): {recalls}"
    with torch.no_grad():
        logits = head(test_x)
        nll = torch.nn.functional.cross_entropy(logits, test_y).item()
    assert nll < 0.2, f"held-out cross-entropy of the probe's probabilities: {nll:.3f}"


# ---------------------------------------------------------------------------
# 41: statistics computed before the train/val split

@edit("stats-before-split.probe-standardisation", file=EVAL)
def _(source):
    standardise = m.Assign(targets=[m.AssignTarget(m.Tuple([m.Element(m.Name("mean")), m.Element(m.Name("std"))]))])
    source = cst.drop_comments_above(source, "probe_metrics", standardise)  # it names the statistics to use
    return cst.replace_node(source, "probe_metrics", standardise, lambda node: node.with_changes(
        value=cst.parse_expression("features.mean(dim=0), features.std(dim=0) + 1e-6")))


@edit("stats-before-split.tokenizer", file=CORPUS)
def _(source):
    train_call = m.Call(func=m.Attribute(value=m.Name("Tokenizer"), attr=m.Name("train")))
    return cst.replace_node(source, "build_corpus", train_call, lambda node: node.with_changes(
        args=[node.args[0].with_changes(value=cst.parse_expression("[s.text for s in stories]")), *node.args[1:]]))


@check("stats-before-split")
def _():
    """Nothing learned from the data sees the held-out part: the probe's standardisation uses the
    probe's training split only, and the tokenizer is trained on the corpus's training split only."""
    import os
    import tempfile

    import scripts.base_eval as base_eval
    from picochat import corpus, dataset
    from picochat.tokenizer import Tokenizer

    seen = {}

    def fake_features(model, tokenizer, texts, device, batch_size=64):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(len(texts), 8, generator=g)
        x[int(0.8 * len(texts)):] += 50.0  # the held-out part is far away
        return x

    def fake_train_probe(train_x, train_y, epochs, seed):
        seen["train"] = train_x

        def head(x):
            seen.setdefault("inputs", []).append(x)
            return torch.zeros(len(x), 2)
        return head

    saved = base_eval.probe_features, base_eval.train_probe
    base_eval.probe_features, base_eval.train_probe = fake_features, fake_train_probe
    try:
        base_eval.probe_metrics(None, None, 200, 1, 0, torch.device("cpu"))
    finally:
        base_eval.probe_features, base_eval.train_probe = saved
    train_x = seen["train"]
    assert train_x.mean(dim=0).abs().max() < 0.05 and (train_x.std(dim=0) - 1).abs().max() < 0.05, (
        f"probe training features after standardisation: mean {train_x.mean().item():.3f}, "
        f"std {train_x.std(dim=0).mean().item():.3f}")
    test_means = [x.mean().item() for x in seen["inputs"]]
    assert max(test_means) > 20, f"held-out probe features were standardised with their own statistics: {test_means}"

    texts_seen = []
    original = Tokenizer.train.__func__

    def recording_train(cls, texts, vocab_size):
        texts = list(texts)
        texts_seen.extend(texts)
        return original(cls, texts, vocab_size)

    Tokenizer.train = classmethod(recording_train)
    try:
        path = os.path.join(tempfile.mkdtemp(), "corpus")
        corpus.build_corpus(path, 300, 256 + 6 + 20, 0)
    finally:
        Tokenizer.train = classmethod(original)
    _, val = dataset.split_train_val(dataset.generate_stories(300, 0), 0.1, 0)
    leaked = {s.text for s in val} & set(texts_seen)
    assert texts_seen and not leaked, f"the tokenizer was trained on {len(leaked)} validation texts"


# ---------------------------------------------------------------------------
# 44: data-loader workers leak memory (a dataset that caches every item it renders)

@edit("worker-memory.item-cache", file=LOADER)
def _(source):
    source = cst.insert_statement(source, "ChatDataset.__init__", "self.cache = {}",
                                  after=m.Assign(targets=[m.AssignTarget(m.Attribute(attr=m.Name("seq_len")))]))
    render = m.Call(func=m.Attribute(attr=m.Name("render_conversation")))
    cached = [
        cst.parse_statement("if index not in self.cache:\n"
                            "    self.cache[index] = self.tokenizer.render_conversation(self.conversations[index])\n"),
        cst.parse_statement("ids, mask = self.cache[index]\n"),
    ]
    return cst.replace_node(source, "ChatDataset.__getitem__",
                            m.SimpleStatementLine(body=[m.Assign(value=render)]),
                            lambda node: cst_.FlattenSentinel(cached))


@check("worker-memory")
def _():
    """Reading items does not make the dataset hold on to them: once the tokenizer has seen the
    words, a pass over new conversations leaves (almost) nothing allocated behind."""
    import gc
    import tracemalloc

    from picochat.dataloader import ChatDataset

    tokenizer = _byte_tokenizer()
    conversations = [[{"role": "user", "content": f"What is {i % 12} plus {i % 7}?"},
                      {"role": "assistant", "content": f"{i % 12} plus {i % 7} is {i % 12 + i % 7}. " * 3}]
                     for i in range(1200)]
    chats = ChatDataset(conversations, tokenizer, seq_len=256)
    for i in range(200):
        chats[i]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(200, 1200):
        chats[i]
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert retained < 200_000, f"{retained / 1e6:.2f} MB still allocated after reading 1000 items"
