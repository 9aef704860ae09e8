"""The keyword and unpacking families (keyword-dropped, unpack-order, concat-order): each makes
exactly the edit it names on a snippet, says what is wrong in its cause, and leaves alone the shapes
that are no bug of its kind; and they come after the 58 older families in the registry, so every
text an older family makes keeps its family."""

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["keyword-dropped", "unpack-order", "concat-order"]


def test_the_keyword_families_come_after_the_58_older_ones():
    registry = list(operators.FAMILIES)
    positions = [registry.index(name) for name in NEW_FAMILIES]
    assert min(positions) >= 58 and positions == sorted(positions)


# -- keyword-dropped

def test_keyword_dropped_loses_keepdim_causality_and_an_init_scale():
    code = '''\
        import torch
        import torch.nn.functional as F


        def forward(x, q, k, v, w):
            x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6)
            torch.nn.init.normal_(w, mean=0.0, std=0.02)
            return x + F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.1)
        '''
    mutants = snippet_mutants(code, "keyword-dropped")
    keepdim = only(mutants, "x.pow(2).mean(dim=-1)")
    assert keepdim.cause == ("keepdim=True is dropped from x.pow(2).mean(...) in forward: the reduced dimension is "
                             "squeezed away, so the result no longer lines up with the axes it is combined with")
    assert "keepdim" in keepdim.cause_terms[0] and "drop" in keepdim.cause_terms[1]
    assert "    x = x * torch.rsqrt(x.pow(2).mean(dim=-1) + 1e-6)\n" in keepdim.text
    std = only(mutants, "torch.nn.init.normal_(w, mean=0.0)")
    assert "std 1.0 (the default) instead of 0.02" in std.cause
    causal = only(mutants, "F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)")
    assert "is_causal=True is dropped" in causal.cause and "no longer causal" in causal.cause
    only(mutants, "F.scaled_dot_product_attention(q, k, v, is_causal=True)")
    assert len(mutants) == 4  # mean=0.0 is normal_'s default already


def test_keyword_dropped_loses_what_the_loader_and_the_sampler_are_given():
    code = '''\
        from torch.utils.data import DataLoader


        def loader(data, batch_size, sampler, g, train):
            return DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=train, generator=g,
                              num_workers=2, shuffle=False)
        '''
    mutants = snippet_mutants(code, "keyword-dropped")
    assert {m.cause.split(" is dropped")[0] for m in mutants} == {
        "batch_size=batch_size", "sampler=sampler", "drop_last=train", "generator=g"}
    generator = next(m for m in mutants if m.cause.startswith("generator=g"))
    assert "global random generator instead of g" in generator.cause
    assert "generator" in generator.cause_terms[0]


def test_keyword_dropped_loses_an_update_scale_an_average_across_ranks_and_a_bound():
    code = '''\
        import torch.distributed as dist


        def step(p, update, lr, grad, total):
            p.add_(update, alpha=-lr)
            dist.all_reduce(grad, op=dist.ReduceOp.AVG)
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            return p, grad.clamp(min=-1.0, max=1.0)
        '''
    mutants = snippet_mutants(code, "keyword-dropped")
    alpha = only(mutants, "p.add_(update)")
    assert alpha.cause == ("alpha=-lr is dropped from p.add_(...) in step: the term is added with scale 1 (the "
                           "default) instead of -lr")
    average = only(mutants, "dist.all_reduce(grad)")
    assert "summed across ranks" in average.cause
    lower = only(mutants, "grad.clamp(max=1.0)")
    assert "nothing bounds it from below any more (the lower bound was -1.0)" in lower.cause
    only(mutants, "grad.clamp(min=-1.0)")
    assert len(mutants) == 4  # SUM is all_reduce's default


def test_keyword_dropped_loses_a_keyword_that_a_function_of_the_file_gives_a_default_to():
    code = '''\
        def hidden_states(idx, kv_cache=None, attn_mask=None, verbose=False):
            return idx


        class GPT:
            def encode(self, x, scale=1.0, *, mask):
                return x

            def features(self, idx, attn_mask, w):
                x = hidden_states(idx, attn_mask=attn_mask, verbose=True)
                return self.encode(x, scale=w, mask=attn_mask), hidden_states(idx, kv_cache=None)
        '''
    mutants = snippet_mutants(code, "keyword-dropped")
    mask = only(mutants, "hidden_states(idx, verbose=True)")
    assert mask.cause == ("attn_mask=attn_mask is dropped from hidden_states(...) in GPT.features, so hidden_states "
                          "falls back to its default attn_mask=None")
    assert "attn_mask" in mask.cause_terms[0] and "attn mask" in mask.cause_terms[0]
    scale = only(mutants, "self.encode(x, mask=attn_mask)")
    assert "its default scale=1.0" in scale.cause
    # verbose says how it reports, mask has no default, kv_cache=None is the default already
    assert len(mutants) == 2


def test_keyword_dropped_leaves_defaults_devices_unknown_callees_lone_bounds_and_logs_alone():
    code = '''\
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader


        def run(x, logits, targets, data, pad, lr, log):
            y = x.sum(dim=0, keepdim=False).to(device="cuda", non_blocking=True)
            z = torch.zeros(3, dtype=torch.float16, device=x.device)
            loss = F.cross_entropy(logits, targets, ignore_index=pad, reduction="mean")
            c = torch.clamp(x, max=1.0)
            loader = DataLoader(data, shuffle=False, num_workers=4, pin_memory=True)
            log.info("step", extra=dict(lr=lr), stacklevel=2)
            return F.softmax(y, dim=-1), z, loss, c, loader, x.view(-1, keepdim=True), lr.mul_(2, alpha=0.1)
        '''
    mutants = snippet_mutants(code, "keyword-dropped")
    # ignore_index belongs to loss-option-dropped, dim to reduction-axis, alpha is no keyword of mul_
    assert mutants == []


# -- unpack-order

def test_unpack_order_trades_a_batch_and_the_sizes_of_a_tensor():
    code = '''\
        def step(model, batch, x):
            inputs, targets = batch
            B, T, C = x.size()
            return model(inputs, targets).view(B, T, C)
        '''
    mutants = snippet_mutants(code, "unpack-order")
    batch = only(mutants, "targets, inputs = batch")
    assert batch.before == "inputs, targets = batch"
    assert batch.cause == ("inputs and targets are unpacked in each other's places in step: inputs takes the value "
                           "meant for targets, and targets the one meant for inputs")
    assert "inputs" in batch.cause_terms[0] and "targets" in batch.cause_terms[0]
    assert "    targets, inputs = batch\n" in batch.text
    only(mutants, "T, B, C = x.size()")
    only(mutants, "B, C, T = x.size()")
    assert len(mutants) == 3


def test_unpack_order_trades_the_inner_pair_of_a_loop_and_the_names_of_a_comprehension():
    code = '''\
        def collate(batch, ids, mask):
            for row, (x, y) in enumerate(batch):
                print(row)
            return [tok if keep else -1 for tok, keep in zip(ids, mask)]
        '''
    mutants = snippet_mutants(code, "unpack-order")
    inner = only(mutants, "for row, (y, x) in enumerate(batch)")
    assert inner.before == "for row, (x, y) in enumerate(batch)"
    assert " x " in inner.cause_terms[0] and " y " in inner.cause_terms[0]
    only(mutants, "for keep, tok in zip(ids, mask)")
    assert len(mutants) == 2


def test_unpack_order_leaves_blanks_stars_counters_strings_dicts_metadata_and_initial_values_alone():
    code = '''\
        def loop(loader, batches, p, named):
            _, T = p.size()
            head, *rest = named
            total, count = 0, 0.0
            parts, end = [], 0
            for i, batch in enumerate(loader):
                print(i, batch)
            for name, param in named.items():
                print(name, param)
            epoch, inputs = next(batches)
            shape, device, dtype = p.shape, p.device, p.dtype
            path, model = named
            x, state_dict = next(batches)
            a, b, c, d = p
            return (T, head, rest, total, count, parts, end, inputs, epoch, shape, device, dtype, path, model, x,
                    state_dict, a, b, c, d)
        '''
    assert snippet_mutants(code, "unpack-order") == []


# -- concat-order

def test_concat_order_trades_the_halves_of_a_rotation():
    code = '''\
        import torch


        def rotate_half(x1, x2):
            return torch.cat([-x2, x1], dim=-1)
        '''
    (mutant,) = snippet_mutants(code, "concat-order")
    assert mutant.before == "torch.cat([-x2, x1], dim=-1)" and mutant.after == "torch.cat([x1, -x2], dim=-1)"
    assert mutant.cause == ("torch.cat puts x1 before -x2 in rotate_half: the pieces of the result are in each "
                            "other's places")
    assert "x2" in mutant.cause_terms[0] and "x1" in mutant.cause_terms[0] and "cat" in mutant.cause_terms[1]


def test_concat_order_trades_each_adjacent_pair_of_a_bare_stack():
    code = '''\
        from torch import stack


        def gather(q, k, v):
            return stack((q, k, v), dim=0)
        '''
    mutants = snippet_mutants(code, "concat-order")
    only(mutants, "stack((k, q, v), dim=0)")
    only(mutants, "stack((q, v, k), dim=0)")
    assert len(mutants) == 2


def test_concat_order_leaves_lists_in_variables_stars_like_pieces_and_other_joins_alone():
    code = '''\
        import numpy as np
        import torch


        def join(pieces, x, y, cat, self):
            a = torch.cat(pieces, dim=0)
            b = torch.cat([x, x], dim=1)
            c = torch.stack([x, *pieces])
            d = np.concatenate([x, y])
            return a, b, c, d, cat([x, y]), self.stack([x, y]), torch.cat([x], dim=0)
        '''
    assert snippet_mutants(code, "concat-order") == []
