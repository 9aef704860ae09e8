"""The terms and logic families (term-dropped, factor-dropped, logic-swapped, literal-swapped): each
makes exactly the edit it names on a snippet, says in its cause what is lost or swapped and where,
and leaves alone what is no bug of its kind (string and path joins, literal offsets, sizes, timing,
values only logged, defaults written with `or`, options the file never passes); and they come after
the 58 older families, so every text those make keeps its family."""

import ast

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["term-dropped", "factor-dropped", "logic-swapped", "literal-swapped"]


def test_the_terms_and_logic_families_come_after_the_58_older_ones():
    registry = list(operators.FAMILIES)
    assert registry.index("tuple-index") == 57  # the last of the older families keeps its place
    assert min(registry.index(name) for name in NEW_FAMILIES) >= 58
    assert [name for name in registry if name in NEW_FAMILIES] == NEW_FAMILIES
    assert {operators.FAMILIES[name].theme for name in NEW_FAMILIES} == {"terms", "logic"}


# -- term-dropped

def test_term_dropped_leaves_out_a_positional_embedding_and_a_centring():
    code = '''\
        def embed(self, idx, x):
            h = self.tok_emb(idx) + self.pos_emb
            return h, x - x.mean()
        '''
    mutants = snippet_mutants(code, "term-dropped")
    dropped = only(mutants, "self.tok_emb(idx)")
    assert dropped.before == "self.tok_emb(idx) + self.pos_emb"
    assert dropped.cause == ("self.pos_emb is no longer added to self.tok_emb(idx) in embed: self.tok_emb(idx) is "
                             "used where self.tok_emb(idx) + self.pos_emb is meant")
    assert dropped.cause_terms[0] == ("pos_emb",) and "missing" in dropped.cause_terms[1]
    assert all(term == term.lower() for group in dropped.cause_terms for term in group)
    only(mutants, "self.pos_emb")
    centring = only(mutants, "x")
    assert centring.cause.startswith("x.mean() is no longer subtracted from x in embed")
    assert centring.text.endswith("    return h, x\n")
    assert len(mutants) == 3  # the minuend of a difference is never what is left


def test_term_dropped_drops_each_term_of_a_chain_once():
    code = '''\
        def total(loss, aux_loss, z_loss):
            return loss + aux_loss + z_loss
        '''
    mutants = snippet_mutants(code, "term-dropped")
    returned = sorted(m.text.splitlines()[1].strip() for m in mutants)
    assert returned == ["return aux_loss + z_loss", "return loss + aux_loss", "return loss + z_loss"]
    assert only(mutants, "loss + aux_loss").cause_terms[0] == ("z_loss",)


def test_term_dropped_leaves_joins_literal_offsets_epsilons_sizes_timing_and_reports_alone():
    code = '''\
        import time
        import torch


        def misc(path, ids, step, v, eps, n, b, start, t0, x, y):
            name = path.name + ".tmp"
            batch = [0] + ids
            nxt = step + 1
            safe = torch.rsqrt(v + eps)
            chunks = (n + b - 1) // b
            pos = torch.arange(start, start + n)
            dt = time.time() - t0
            gap = x - y
            print(f"gap {gap}")
            assert start + n <= 10
            return name, batch, nxt, safe, chunks, pos, dt
        '''
    assert snippet_mutants(code, "term-dropped") == []


# -- factor-dropped

def test_factor_dropped_leaves_out_a_scale_a_coefficient_and_a_divisor():
    code = '''\
        def head(logits, scale, x, loss, grad_accum_steps, std, fan_in):
            w = std * (fan_in ** -0.5)
            return logits * scale, 0.5 * x, loss / grad_accum_steps, w
        '''
    mutants = snippet_mutants(code, "factor-dropped")
    scaled = only(mutants, "logits")
    assert scaled.cause == "logits is no longer multiplied by scale in head: logits is used where logits * scale is meant"
    assert scaled.cause_terms[0] == ("scale",) and "no longer" in scaled.cause_terms[1]
    halved = only(mutants, "x")
    assert halved.before == "0.5 * x" and halved.cause_terms[0] == ("0.5",)
    divided = only(mutants, "loss")
    assert divided.cause.startswith("loss is no longer divided by grad_accum_steps in head")
    only(mutants, "std")
    assert len(mutants) == 4


def test_factor_dropped_drops_the_factor_that_scales_not_the_value():
    code = '''\
        def update(lr, g, a, X, gate, h, resid_lambdas, i):
            return lr * g, a * X, gate * h, resid_lambdas[i] * h
        '''
    mutants = snippet_mutants(code, "factor-dropped")
    assert sorted(m.after for m in mutants) == ["X", "g", "h", "h"]


def test_factor_dropped_leaves_sizes_sequences_paths_ones_and_the_dividend_alone():
    code = '''\
        def shapes(x, B, T, C, n, n_head, head_dim, base_dir, i, a, b):
            y = x.view(B * T, C)
            rule, pad = "=" * 80, [0] * n
            kv_dim = n_head * head_dim
            path = base_dir / "ckpt.pt"
            row = x[i * T]
            return y, rule, pad, kv_dim, path, row, x * 1, -1 * x, 2 * 3
        '''
    assert snippet_mutants(code, "factor-dropped") == []
    quotient = snippet_mutants("def f(a, b):\n    return a / b\n", "factor-dropped")
    assert [m.after for m in quotient] == ["a"]


# -- logic-swapped

def test_logic_swapped_combines_masks_and_conditions_the_other_way():
    code = '''\
        def attend(mask, valid, step, every, last_step):
            mask = mask & valid[:, None]
            mask &= valid
            if step % every == 0 or last_step:
                return mask
            return None
        '''
    mutants = snippet_mutants(code, "logic-swapped")
    union = only(mutants, "mask | valid[:, None]")
    assert union.cause == ("mask is joined to valid[:, None] by `|` where `&` is meant in attend: the mask keeps the "
                           "positions either keeps, not only those both keep")
    assert "mask" in union.cause_terms[0] and "union" in union.cause_terms[1]
    only(mutants, "mask |= valid")
    both = only(mutants, "step % every == 0 and last_step")
    assert "holds only when both do" in both.cause and "`or` is meant" in both.cause
    assert len(mutants) == 3


def test_logic_swapped_brackets_what_the_new_operator_would_split():
    code = '''\
        def save(a, b, c, m1, m2, m3):
            if a or b or c:
                return m1 | m2 | m3
            return None
        '''
    mutants = snippet_mutants(code, "logic-swapped")
    conditions = only(mutants, "(a or b) and c")
    masks = only(mutants, "(m1 | m2) & m3")
    for mutant, expected in ((conditions, "(a or b) and c"), (masks, "(m1 | m2) & m3")):
        assert ast.dump(ast.parse(expected, mode="eval").body) in ast.dump(ast.parse(mutant.text))
    assert len(mutants) == 4


def test_logic_swapped_leaves_defaults_constants_bit_flags_and_reports_alone():
    code = '''\
        def defaults(given, computed, bound, flags, ok, debug):
            n = given or computed
            env = bound or {}
            low = flags & 0xFF
            if ok and True:
                pass
            verbose = ok and debug
            print(f"{verbose}")
            return n, env, low
        '''
    assert snippet_mutants(code, "logic-swapped") == []


# -- literal-swapped

def test_literal_swapped_passes_a_sibling_option_of_the_same_slot():
    code = '''\
        def loaders(get_batch, F, logits, y):
            train = get_batch("train", split="train")
            val = get_batch("val", split="val")
            test = get_batch("test", split="test")
            return F.cross_entropy(logits, y, reduction="sum"), train, val, test
        '''
    mutants = snippet_mutants(code, "literal-swapped")
    keyword = [m for m in mutants if m.line == 2 and m.after == '"val"' and "split=" in m.cause]
    assert len(keyword) == 1
    assert keyword[0].cause == "split='val' is passed where split='train' is meant in get_batch(...) in loaders"
    assert keyword[0].cause_terms[0] == ("train", "val") and "split" in keyword[0].cause_terms[1]
    positional = [m for m in mutants if m.line == 2 and m.after == '"test"' and "argument 1" in m.cause]
    assert len(positional) == 1 and 'get_batch("test", split="train")' in positional[0].text
    # each of the three calls, each of its two slots, each of the two other values; reduction has no sibling
    assert len(mutants) == 12


def test_literal_swapped_leaves_logs_text_handling_environment_and_lone_options_alone():
    code = '''\
        import os


        def misc(logger, name, path, F, logits, y):
            logger.info("train")
            logger.info("val")
            stem = name.split(".")[0] + name.split("_")[0]
            rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK")
            with open(path, "w") as f, open(path, "r") as g:
                pass
            note = f"{name}"
            return F.cross_entropy(logits, y, reduction="mean"), stem, rank, note, f, g
        '''
    assert snippet_mutants(code, "literal-swapped") == []


# -- what only reports

def test_values_only_logged_and_estimates_are_left_alone_and_values_trained_on_are_not():
    code = '''\
        def step(flops, peak, lr, lr_mult, opt, log):
            mfu = flops / peak
            pct = 100 * mfu
            log(f"mfu {pct:.1f}%")
            rate = lr * lr_mult
            opt.step(rate)


        def estimate_flops(n_params, tokens):
            return 6 * n_params * tokens
        '''
    (mutant,) = snippet_mutants(code, "factor-dropped")
    assert mutant.before == "lr * lr_mult" and mutant.after == "lr"
