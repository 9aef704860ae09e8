"""The attributes families (attribute-swapped, index-shifted): each makes exactly the edit it names
on a snippet, says in its cause what is read instead of what and where, and leaves alone what is no
bug of its kind (imported modules, strings, seeds, tensor metadata, methods, values of another
kind, names variable-swap already pairs; literal indices, slices, dict keys, index tensors); and
they come after the 68 older families, so every text those make keeps its family."""

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["attribute-swapped", "index-shifted"]


def test_the_attributes_families_come_after_the_68_older_ones():
    registry = list(operators.FAMILIES)
    assert registry.index("fill-swapped") == 67  # the last of the older families keeps its place
    assert registry[72:74] == NEW_FAMILIES  # their places, so a theme added later takes none of their texts
    assert {operators.FAMILIES[name].theme for name in NEW_FAMILIES} == {"attributes"}


# -- attribute-swapped

CONFIG = '''\
    from dataclasses import dataclass


    @dataclass
    class Config:
        n_layer: int = 4
        n_head: int = 4
        n_kv_head: int = 2
        n_embd: int = 128
        dropout: float = 0.0
        attn_impl: str = "sdpa"

'''


def test_attribute_swapped_reads_the_nearest_siblings_of_the_same_declared_kind():
    code = CONFIG + '''\

    def build(config):
        heads = config.n_head
        kv_heads = config.n_kv_head
        depth = config.n_layer
        width = config.n_embd
        p = config.dropout
        impl = config.attn_impl
        return heads, kv_heads, depth, width, p, impl
    '''
    mutants = snippet_mutants(code, "attribute-swapped")
    # the sibling that shares a word of what the name is for; else the nearest field (of two as
    # near, the one that shares more of the name)
    assert [m.after for m in mutants if m.before == "config.n_head"] == ["config.n_kv_head"]
    assert [m.after for m in mutants if m.before == "config.n_kv_head"] == ["config.n_head"]
    assert [m.after for m in mutants if m.before == "config.n_layer"] == ["config.n_head"]
    assert [m.after for m in mutants if m.before == "config.n_embd"] == ["config.n_kv_head"]
    kv = [m for m in mutants if m.before == "config.n_head"][0]
    assert kv.function == "build"
    assert kv.cause == "config.n_kv_head is read where config.n_head is meant in build (another attribute of config)"
    assert kv.cause_terms[0] == ("n_head",) and "n_kv_head" in kv.cause_terms[1]
    assert "    heads = config.n_kv_head\n" in kv.text
    # dropout has no other float, a string is never swapped
    assert len(mutants) == 4
    assert not [m for m in mutants if "dropout" in m.before + m.after or "attn_impl" in m.before + m.after]


def test_attribute_swapped_applies_a_layer_built_by_the_same_call():
    code = '''\
        import torch.nn as nn


        class Attention(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
                self.c_k = nn.Linear(config.n_embd, config.n_embd, bias=False)
                self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
                self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)

            def forward(self, x):
                q, k = self.c_q(x), self.c_k(x)
                return self.c_proj(self.c_fc(q * k))


        class MLP(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

            def forward(self, x):
                return self.c_proj(x)
        '''
    mutants = snippet_mutants(code, "attribute-swapped")
    query = [m for m in mutants if m.before == "self.c_q"]
    assert [m.after for m in query] == ["self.c_proj"]  # c_q <-> c_k is variable-swap's
    assert query[0].cause == ("self.c_proj is applied where self.c_q is meant in Attention.forward: a layer built "
                              "the same way, with weights of its own")
    projection = sorted(m.after for m in mutants if m.before == "self.c_proj")
    assert projection == ["self.c_k", "self.c_q"]  # one class's self, not the other's; c_fc is built otherwise
    assert len(mutants) == 4


def test_attribute_swapped_pairs_arguments_by_their_argparse_type():
    code = '''\
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--depth", type=int, default=20)
        parser.add_argument("--max-seq-len", type=int, default=2048)
        parser.add_argument("--matrix-lr", type=float, default=0.02)
        parser.add_argument("--embedding-lr", type=float, default=0.3)
        parser.add_argument("--scalar-lr", type=float, default=0.5)
        parser.add_argument("--run", type=str, default="dummy")
        args = parser.parse_args()

        model = build(depth=args.depth, seq_len=args.max_seq_len, run=args.run)
        optimizer = setup(model, matrix_lr=args.matrix_lr, embedding_lr=args.embedding_lr, scalar_lr=args.scalar_lr)
        '''
    mutants = snippet_mutants(code, "attribute-swapped")
    # at most two siblings that share a word (lr), the nearest first
    assert [m.after for m in mutants if m.before == "args.matrix_lr"] == ["args.embedding_lr", "args.scalar_lr"]
    pairs = sorted((m.before, m.after) for m in mutants if "lr" not in m.before)
    assert pairs == [("args.depth", "args.max_seq_len"), ("args.max_seq_len", "args.depth")]
    assert len(mutants) == 8
    assert all(m.function == "" for m in mutants)


def test_attribute_swapped_leaves_modules_strings_seeds_metadata_methods_and_other_kinds_alone():
    code = '''\
        import torch


        def misc(args, x, tokenizer, corpus):
            a = torch.zeros(3, dtype=torch.float32, device=x.device) + torch.ones(2, dtype=torch.long)
            b = x.shape[0] + x.ndim
            ids = tokenizer.encode("hi") + tokenizer.decode([1])
            span = tokenizer.vocab_size - tokenizer.bos_id  # a count and an id: not one kind
            torch.manual_seed(args.seed + args.num_workers)
            print(args.lr)
            tokens = corpus.train_tokens, corpus.val_tokens
            if args.device == "cuda" or args.dtype == "bfloat16":
                a = a.half()
            return a, b, ids, span, tokens, args.warmup_steps * args.lr
        '''
    assert snippet_mutants(code, "attribute-swapped") == []


def test_attribute_swapped_leaves_a_sibling_already_in_the_operation_alone():
    code = CONFIG + '''\

    def groups(config):
        return config.n_head // config.n_kv_head, config.n_layer, config.n_embd
    '''
    mutants = snippet_mutants(code, "attribute-swapped")
    # n_head and n_kv_head pair, but each is the other's operand: the nearest field instead
    assert [m.after for m in mutants if m.before == "config.n_head"] == ["config.n_layer"]
    assert [m.after for m in mutants if m.before == "config.n_kv_head"] == ["config.n_embd"]
    assert all("config.n_kv_head // config.n_kv_head" not in m.text and "config.n_head // config.n_head" not in m.text
               for m in mutants)


# -- index-shifted

def test_index_shifted_reads_and_writes_one_position_off():
    code = '''\
        import torch


        def collate(batch, n, layers, x, T):
            out = torch.zeros(len(batch), n)
            for row, (inputs, _) in enumerate(batch):
                out[row, : len(inputs)] = inputs
            for i in range(len(layers)):
                x = layers[i](x)
            ys = [x[:, t] for t in range(T)]
            return out, ys
        '''
    mutants = snippet_mutants(code, "index-shifted")
    written = only(mutants, "out[row - 1, : len(inputs)]")
    assert written.before == "out[row, : len(inputs)]"
    assert written.cause == ("out is written at row - 1 along axis 0 where row is meant in collate: the element one "
                             "before the one meant")
    assert written.cause_terms[0] == ("out", "row") and "off by one" in written.cause_terms[1]
    only(mutants, "out[row + 1, : len(inputs)]")
    read = only(mutants, "layers[i + 1]")
    assert read.cause == "layers is read at i + 1 where i is meant in collate: the element one after the one meant"
    assert "`i`" in read.cause_terms[0]
    only(mutants, "layers[i - 1]")
    column = only(mutants, "x[:, t - 1]")
    assert "along axis 1" in column.cause
    only(mutants, "x[:, t + 1]")
    assert len(mutants) == 6


def test_index_shifted_moves_positions_named_so_and_batches_of_positions():
    code = '''\
        import torch


        class Cache:
            def update(self, layer_idx, k):
                self.k[layer_idx] = k
                return self.k[layer_idx]


        def probe(features, labels, module):
            for batch in torch.randperm(len(labels)).split(64):
                loss(features[batch], labels[batch])
            module.weight.data[module.padding_idx].zero_()
        '''
    mutants = snippet_mutants(code, "index-shifted")
    assert sorted(m.after for m in mutants) == sorted([
        "self.k[layer_idx - 1]", "self.k[layer_idx + 1]", "self.k[layer_idx - 1]", "self.k[layer_idx + 1]",
        "features[batch - 1]", "features[batch + 1]", "labels[batch - 1]", "labels[batch + 1]",
        "module.weight.data[module.padding_idx - 1]", "module.weight.data[module.padding_idx + 1]"])
    zeroed = only(mutants, "module.weight.data[module.padding_idx - 1]")
    assert zeroed.cause.startswith("module.weight.data is written at module.padding_idx - 1 where ")
    assert only(mutants, "labels[batch + 1]").cause.startswith("labels is read at batch + 1 where batch is meant")


def test_index_shifted_leaves_literals_slices_keys_index_tensors_offsets_and_reports_alone():
    code = '''\
        import sys


        def misc(x, words, token_bytes, targets, env, losses, n):
            counts = {}
            for word in words:
                counts[word] = env[word]
            for i in range(n):
                print(losses[i])
                y = x[0] + x[i:] + x[i + 1] + x["key"] + sys.argv[i]
            return counts, token_bytes[targets], y
        '''
    assert snippet_mutants(code, "index-shifted") == []
