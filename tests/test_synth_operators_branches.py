"""The branches, subscripts and fills families (branch-forced, subscript-dropped, fill-swapped):
each makes exactly the edit it names on a snippet, says in its cause what now always or never
runs, what selection is lost, or what a tensor now holds, and leaves alone what is no bug of its
kind (early exits, defaults filled in, setup and distributed tests, branches that only report;
assignment targets, dict keys, shapes, single indexes, copies; torch.empty, torch.full, caches
written before they are read); and they come after the 65 older families, so every text those
make keeps its family."""

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["branch-forced", "subscript-dropped", "fill-swapped"]


def test_the_branches_subscripts_and_fills_families_come_after_the_65_older_ones():
    registry = list(operators.FAMILIES)
    assert registry.index("literal-swapped") == 64  # the last of the older families keeps its place
    assert registry[65:68] == NEW_FAMILIES
    assert [operators.FAMILIES[name].theme for name in NEW_FAMILIES] == ["branches", "subscripts", "fills"]


# -- branch-forced

def test_branch_forced_runs_one_branch_of_an_if_else_always():
    code = '''\
        import math


        def get_lr(step, warmup_steps, max_lr, total):
            if step < warmup_steps:
                lr = max_lr * (step + 1) / warmup_steps
            else:
                # cosine decay
                lr = max_lr * 0.5 * (1 + math.cos(math.pi * step / total))
            return lr
        '''
    mutants = snippet_mutants(code, "branch-forced")
    assert len(mutants) == 2
    warmup = only(mutants, "lr = max_lr * (step + 1) / warmup_steps")
    assert warmup.line == 5 and warmup.before.startswith("if step < warmup_steps:\n")
    assert warmup.text.endswith(
        "def get_lr(step, warmup_steps, max_lr, total):\n    lr = max_lr * (step + 1) / warmup_steps\n    return lr\n")
    assert warmup.cause == (
        "the if branch of `if step < warmup_steps:` always runs in get_lr: lr = max_lr * (step + 1) / warmup_steps "
        "is done also where step < warmup_steps is false, and the else branch "
        "(lr = max_lr * 0.5 * (1 + math.cos(math.pi * step / total))) never runs")
    assert "warmup_steps" in warmup.cause_terms[0] and "always" in warmup.cause_terms[1]
    decay = only(mutants, "lr = max_lr * 0.5 * (1 + math.cos(math.pi * step / total))")
    assert "the else branch of `if step < warmup_steps:` always runs" in decay.cause
    assert "    # cosine decay\n    lr = max_lr * 0.5" in decay.text  # the kept body keeps its own comments


def test_branch_forced_runs_the_body_of_a_bare_if_always_master_only_work_included():
    code = '''\
        import torch.nn.functional as F


        def block(self, x, model, master_process):
            if self.training:
                x = F.dropout(x, p=0.1)
            if master_process:
                model.ema_update()
            return x
        '''
    mutants = snippet_mutants(code, "branch-forced")
    dropout = only(mutants, "x = F.dropout(x, p=0.1)")
    assert dropout.cause == ("the body of `if self.training:` always runs in block: x = F.dropout(x, p=0.1) runs also "
                             "where self.training is false, where the test was meant to decide")
    assert "        x = F.dropout(x, p=0.1)\n        if master_process:" not in dropout.text
    assert "    x = F.dropout(x, p=0.1)\n    if master_process:\n" in dropout.text
    only(mutants, "model.ema_update()")
    assert len(mutants) == 2


def test_branch_forced_leaves_exits_defaults_none_tests_and_elif_chains_alone():
    code = '''\
        def sample(logits, temperature, top_k, n, name, mode, x, y):
            if temperature == 0.0:
                return logits.argmax(dim=-1)
            if top_k is None:
                top_k = 50
            if n == -1:
                n = logits.size(-1)
            if not name:
                name = "model"
            if top_k is not None:
                logits = logits.topk(top_k).values
            if mode == "a":
                x = x + 1
            elif mode == "b":
                x = x - 1
            else:
                x = x * 2
            for row in logits:
                if row.sum() > 0:
                    continue
                y = y + row
            if x > y:
                raise ValueError("x")
            else:
                y = x
            return logits, n, name, x, y
        '''
    assert snippet_mutants(code, "branch-forced") == []


def test_branch_forced_leaves_setup_distributed_text_size_cache_and_report_tests_alone():
    code = '''\
        import os
        import time

        import torch
        import torch.distributed as dist


        def setup(device, ddp, loss, world_size, path, state, cache, word, text, ids, pos, num_owned, buf, ratio,
                  step, every, model, t0, dt, total_time):
            if device.type == "cuda":
                torch.cuda.set_device(0)
            if ddp:
                loss = loss / world_size
            if "RANK" in os.environ:
                loss = loss * 2
            if not path.exists():
                state = build(path)
            if dist.is_initialized():
                dist.all_reduce(loss)
            if word not in cache:
                cache[word] = encode(word)
            if text.startswith(word, pos):
                ids.append(pos)
            if num_owned > 0:
                buf[:num_owned].copy_(loss)
            if ratio != 1.0:
                loss = loss * ratio ** 0.5
            if step % every == 0:
                print(f"step {step} loss {loss}")
                torch.save(model.state_dict(), path)
            if step % every == 0:
                val_loss = evaluate(model)
                model.train()
            if step > 10:
                total_time += dt
            if state.resume:
                model.load_state_dict(torch.load(path))
            try:
                import flash_attn
            except ImportError:
                flash_attn = None
            if flash_attn:
                from flash_attn import flash_attn_func
            return loss, state, ids, total_time
        '''
    assert snippet_mutants(code, "branch-forced") == []


def test_branch_forced_leaves_the_main_guard_alone():
    code = '''\
        def main(args):
            model = build(args)
            return model


        if __name__ == "__main__":
            main(None)
        '''
    assert snippet_mutants(code, "branch-forced", path="scripts/train.py") == []


# -- subscript-dropped

def test_subscript_dropped_uses_the_whole_tensor_where_part_of_it_is_meant():
    code = '''\
        import torch


        def step(model, idx, max_len, tokens, x, d, probs, targets, n, mask):
            logits = model(idx[:, -max_len:])[:, -1, :]
            inputs, labels = tokens[:-1], tokens[1:]
            half = x[..., :d]
            picked = probs[torch.arange(n), targets]
            scores = x.masked_fill(mask[:, None, None, :], 0.0)
            return logits, inputs, labels, half, picked, scores
        '''
    mutants = snippet_mutants(code, "subscript-dropped")
    last = only(mutants, "model(idx[:, -max_len:])")
    assert last.cause == ("model(idx[:, -max_len:]) is used whole where model(idx[:, -max_len:])[:, -1, :] is meant in "
                          "step: the subscript [:, -1, :] that selected only the last position is missing")
    assert "model" in last.cause_terms[0] and "whole" in last.cause_terms[1]
    cropped = only(mutants, "idx")
    assert "    logits = model(idx)[:, -1, :]\n" in cropped.text
    assert [m.cause.split(": ")[1] for m in mutants if m.after == "tokens"] == [
        "the subscript [:-1] that selected all but the last position is missing",
        "the subscript [1:] that selected all but the first position is missing"]
    assert {m.after for m in mutants} == {"model(idx[:, -max_len:])", "idx", "tokens", "x", "probs", "mask"}
    assert "new axes to broadcast against" in only(mutants, "mask").cause
    assert len(mutants) == 7


def test_subscript_dropped_leaves_stores_keys_shapes_single_indexes_copies_and_text_alone():
    code = '''\
        import os
        import sys


        def misc(x, config, ids, text, outputs, cos, stories, buf, y):
            buf[:, :4] = y
            buf[1:] += y
            lr = config["lr"]
            argv = sys.argv[1:]
            home = os.environ["HOME"]
            B, T = x.shape[:2]
            rest = x.size()[1:]
            first = outputs[0]
            copy = ids[:]
            whole = x[:, :]
            c = cos[None, None]
            pairs = list(zip(ids, ids[1:]))
            head = text[:10]
            for story in stories[:3]:
                print(story)
            return lr, argv, home, B, T, rest, first, copy, whole, c, pairs, head
        '''
    assert snippet_mutants(code, "subscript-dropped") == []


# -- fill-swapped

def test_fill_swapped_swaps_constructors_and_fills_for_their_siblings():
    code = '''\
        import torch
        import torch.nn as nn


        def build(self, T, dim, x, w):
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            self.weight = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros_like(w))
            noise = torch.randn(T, dim)
            x.zero_()
            w.fill_(1)
            nn.init.zeros_(self.proj.weight)
            return mask, noise
        '''
    mutants = snippet_mutants(code, "fill-swapped")
    upper = only(mutants, "torch.ones(T, T, dtype=torch.bool).triu()")
    assert upper.cause == (
        "torch.ones(T, T, dtype=torch.bool).triu() is used where torch.ones(T, T, dtype=torch.bool).tril() is meant "
        "in build: the tensor holds the upper triangle (each position with the ones after it) instead of the lower "
        "triangle (each position with the ones before it)")
    assert "future" in upper.cause_terms[0] and "tril" in upper.cause_terms[1]
    zeros = only(mutants, "torch.zeros(dim)")
    assert zeros.cause.endswith("the tensor holds zeros instead of ones")
    assert zeros.cause_terms[0] == ("zero", "0s", "0.0")
    only(mutants, "torch.zeros(T, T, dtype=torch.bool)")
    only(mutants, "torch.ones_like(w)")
    assert "uniform draws" in only(mutants, "torch.rand(T, dim)").cause
    assert "    x.fill_(1)\n" in only(mutants, "x.fill_(1)").text
    only(mutants, "w.fill_(0)")
    only(mutants, "nn.init.ones_(self.proj.weight)")
    assert len(mutants) == 8


def test_fill_swapped_leaves_empty_full_arange_caches_padding_and_other_values_alone():
    code = '''\
        import torch


        def alloc(self, shape, n, x, stacked, zeros):
            self.k_cache = torch.zeros(shape)
            self.v = torch.zeros(shape)
            buf = torch.empty(shape)
            full = torch.full(shape, 0.0)
            pos = torch.arange(0, n)
            stacked[n:].zero_()
            x.fill_(0.5)
            z = zeros(shape)
            return buf, full, pos, z
        '''
    assert snippet_mutants(code, "fill-swapped") == []
