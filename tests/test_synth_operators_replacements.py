"""The replacements families (operator-replaced, constant-zeroed): each makes exactly the edit it
names on a snippet, says in its cause what is swapped or switched off and where, and leaves alone
what is no bug of its kind (string formatting, paths, folded constants, sizes, seeds, timing,
reports, epsilons, clamp bounds, values already neutral); and they come after the 68 older
families, so every text those make keeps its family."""

import ast

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["operator-replaced", "constant-zeroed"]


def test_the_replacements_families_come_after_the_68_older_ones():
    registry = list(operators.FAMILIES)
    assert registry.index("fill-swapped") == 67  # the last of the older families keeps its place
    assert registry[74:76] == NEW_FAMILIES  # their places, so a theme added later takes none of their texts
    assert {operators.FAMILIES[name].theme for name in NEW_FAMILIES} == {"replacements"}


def assert_compiles_to(mutant, expected):
    """The mutant's text holds `expected` as an expression (brackets as Python reads them)."""
    assert ast.dump(ast.parse(expected, mode="eval").body) in ast.dump(ast.parse(mutant.text))


# -- operator-replaced

def test_operator_replaced_squares_multiplies_and_matmuls_the_way_a_tired_hand_does():
    code = '''\
        def attend(self, q, k, v, x, fan_in, base, freqs):
            var = x ** 2
            std = fan_in ** -0.5
            inv_freq = 1.0 / (base ** freqs)
            scores = q @ k.transpose(-2, -1)
            return scores.softmax(-1) @ v, var, std, inv_freq
        '''
    mutants = snippet_mutants(code, "operator-replaced")
    squared = only(mutants, "x * 2")
    assert squared.before == "x ** 2"
    assert squared.cause == "x is multiplied by 2 where it should be raised to that power in attend"
    assert squared.cause_terms[0] == (" x ", "`x`", "(x", " x,", " x)", " x.", "'x'", "x=")
    assert "power" in squared.cause_terms[1] and "**" in squared.cause_terms[1]
    assert all(term == term.lower() for group in squared.cause_terms for term in group)
    only(mutants, "fan_in * -0.5")
    assert_compiles_to(only(mutants, "(base * freqs)"), "1.0 / (base * freqs)")
    matmul = only(mutants, "q * k.transpose(-2, -1)")
    assert matmul.cause == ("q is multiplied elementwise (*) by k.transpose(-2, -1) where a matrix product "
                            "(q @ k.transpose(-2, -1)) is meant in attend")
    assert "matmul" in matmul.cause_terms[1]
    only(mutants, "scores.softmax(-1) * v")
    assert len(mutants) == 5


def test_operator_replaced_swaps_remainder_and_quotient_of_schedules_data_and_layers():
    code = '''\
        def train(model, step, eval_every, tokens, window, margin, layer_idx, pattern):
            if step % eval_every == 0:
                model.evaluate()
            num_windows = len(tokens) // window
            offset = margin // 2
            char = pattern[layer_idx % len(pattern)]
            return num_windows, offset, char
        '''
    mutants = snippet_mutants(code, "operator-replaced")
    cadence = only(mutants, "step // eval_every")
    assert cadence.cause == ("the quotient of step by eval_every is taken where the remainder is meant in train "
                             "(step // eval_every instead of step % eval_every)")
    assert cadence.cause_terms[0] == ("step", "eval_every") and "%" in cadence.cause_terms[1]
    windows = only(mutants, "len(tokens) % window")
    assert windows.cause.startswith("the remainder of len(tokens) by window is taken where the quotient is meant")
    only(mutants, "margin % 2")
    only(mutants, "layer_idx // len(pattern)")  # an index the wrong element of, not a shape error
    assert len(mutants) == 4


def test_operator_replaced_adds_a_gate_multiplies_a_residual_and_subtracts_a_rotated_term():
    code = '''\
        def forward(self, x, gate, v, ve, x1, x2, cos, sin, floor, cosine):
            x = x + self.mlp(self.norm(x))
            v = v + gate * ve
            y1 = x1 * cos + x2 * sin
            lrm = floor + (1.0 - floor) * cosine
            return x, v, y1, lrm
        '''
    mutants = snippet_mutants(code, "operator-replaced")
    multiplied = only(mutants, "x * self.mlp(self.norm(x))")
    assert multiplied.cause == ("x is multiplied by self.mlp(self.norm(x)) where self.mlp(self.norm(x)) should be "
                                "added to it in forward")
    assert "x - self.mlp(self.norm(x))" not in [m.after for m in mutants]  # the branch learns its sign back
    gated = only(mutants, "gate + ve")
    assert gated.cause == "gate and ve are added where they should be multiplied in forward"
    assert_compiles_to(gated, "v + (gate + ve)")
    only(mutants, "v - gate * ve")
    rotated = only(mutants, "x1 * cos - x2 * sin")
    assert rotated.cause == "x2 * sin is subtracted from x1 * cos where it should be added in forward"
    assert "sign" in rotated.cause_terms[1]
    only(mutants, "floor - (1.0 - floor) * cosine")
    assert len(mutants) == 5


def test_operator_replaced_swaps_the_method_forms_of_the_operators():
    code = '''\
        def update(p, u, lr, g, clip_coef, xf, a, b):
            p.add_(u, alpha=-lr)
            g.mul_(clip_coef)
            ms = xf.pow(2).mean(-1)
            return torch.matmul(a, b), ms
        '''
    mutants = snippet_mutants(code, "operator-replaced")
    ascent = only(mutants, "p.sub_(u, alpha=-lr)")
    assert ascent.cause == "u is subtracted from p where it should be added to it (sub_ in place of add_) in update"
    assert "sign" in ascent.cause_terms[1]
    inverted = only(mutants, "g.div_(clip_coef)")
    assert inverted.cause == ("g is divided by clip_coef where it should be multiplied by it (div_ in place of mul_) "
                              "in update")
    only(mutants, "g.add_(clip_coef)")
    only(mutants, "xf.mul(2)")
    only(mutants, "torch.mul(a, b)")
    assert len(mutants) == 5


def test_operator_replaced_leaves_text_paths_constants_sizes_seeds_timing_and_reports_alone():
    code = '''\
        import gc
        import time


        def misc(x, n, base_dir, B, T, C, n_embd, n_head, seed, rank, t0, step, lr, where, pair, i, loss, vocab_size,
                 pad):
            name = "step %d" % n
            path = base_dir / "ckpt"
            ref = 2 ** 19
            y = x.view(B, T, C // n_head)
            head_dim = n_embd // n_head
            half = x.size(-1) // 2
            row = x[i ** 2]
            s = seed + 1000 * rank
            dt = (time.time() - t0) * 1000
            half_lr = lr * 0.5
            where[pair].add(i)
            padded = ((vocab_size + pad - 1) // pad) * pad
            if step % 100 == 0:
                print(f"loss {loss}")
            elif step % 5000 == 0:
                gc.collect()
            assert n % 2 == 0
            print(f"{x ** 2}")
            return name, path, ref, y, head_dim, half, row, s, dt, half_lr, padded
        '''
    assert snippet_mutants(code, "operator-replaced") == []


# -- constant-zeroed

def test_constant_zeroed_switches_off_a_config_class_default_and_a_module_constant():
    code = '''\
        from dataclasses import dataclass, field


        LEARNING_RATE = 3e-4
        N_LAYER = 12


        @dataclass
        class TrainConfig:
            n_layer: int = 12
            lr: float = 3e-3
            weight_decay: float = field(default=0.1)
            dropout: float = arg(0.1, "dropout in attention and MLP")
            final_lr_frac: float = 0.1
            warmup_steps: int = 10
            seed: int = 42
            eps: float = 1e-8
            grad_clip: float = 0.0
        '''
    mutants = snippet_mutants(code, "constant-zeroed")
    lr = [m for m in mutants if m.line == 11]
    assert len(lr) == 1 and lr[0].before == "3e-3" and lr[0].after == "0.0"
    assert lr[0].function == "TrainConfig"
    assert lr[0].cause == "lr=0.0 instead of lr=3e-3 in the TrainConfig defaults: the parameters it drives never move"
    assert "learning rate" in lr[0].cause_terms[0] and "zero" in lr[0].cause_terms[1]
    assert "    lr: float = 0.0\n" in lr[0].text
    decay = [m for m in mutants if m.line == 12]
    assert [m.cause for m in decay] == ["weight_decay=0.0 instead of weight_decay=0.1 in the TrainConfig defaults: "
                                        "no weight decay"]
    assert "weight decay" in decay[0].cause_terms[0]
    assert 'dropout: float = arg(0.0, "dropout in attention and MLP")' in [m for m in mutants if m.line == 13][0].text
    fraction = sorted((m.after, m.cause) for m in mutants if m.line == 14)
    assert fraction == [
        ("0.0", "final_lr_frac=0.0 instead of final_lr_frac=0.1 in the TrainConfig defaults: the learning rate "
                "decays to zero"),
        ("1.0", "final_lr_frac=1.0 instead of final_lr_frac=0.1 in the TrainConfig defaults: the learning rate "
                "never decays")]
    warmup = only(mutants, "0")
    assert warmup.line == 15 and warmup.cause.endswith(": no warmup")
    constant = [m for m in mutants if m.line == 4]
    assert [m.cause for m in constant] == ["LEARNING_RATE=0.0 instead of LEARNING_RATE=3e-4 at module level: the "
                                           "parameters it drives never move"]
    assert len(mutants) == 7  # n_layer, seed, eps and a grad_clip already off are no knobs to switch off


def test_constant_zeroed_turns_off_momentum_decay_an_init_and_an_lr_factor_in_code():
    code = '''\
        import torch


        def setup(model, params, scalar_lr, w, gate, total_steps, warmup_steps=10, temperature=1.0):
            opt = torch.optim.AdamW(params, lr=scalar_lr * 0.01, betas=(0.9, 0.95), weight_decay=0.1)
            torch.nn.init.normal_(w, mean=0.0, std=0.02)
            torch.nn.init.uniform_(gate, 0.0, 0.02)
            return opt
        '''
    mutants = snippet_mutants(code, "constant-zeroed")
    causes = {m.cause for m in mutants}
    assert "beta1 (the first of betas) is 0.0 instead of 0.9 in setup: no momentum" in causes
    assert "weight_decay=0.0 instead of weight_decay=0.1 in setup: no weight decay" in causes
    assert ("the factor 0.01 in lr=scalar_lr * 0.01 is 0.0 in setup: the parameters it drives never move"
            in causes)
    assert "std=0.0 instead of std=0.02 in setup: w starts at zero" in causes
    assert ("the upper bound passed to uniform_ for gate is 0.0 instead of 0.02 in setup: gate starts at zero"
            in causes)
    assert "warmup_steps=0 instead of warmup_steps=10 in setup: no warmup" in causes
    assert "temperature=0.0 instead of temperature=1.0 in setup: sampling is greedy" in causes
    assert "torch.optim.AdamW(params, lr=scalar_lr * 0.0, betas=(0.9, 0.95), weight_decay=0.1)" in [
        m.text for m in mutants if m.before == "0.01"][0]
    assert len(mutants) == 7


def test_constant_zeroed_zeroes_a_schedule_factor_and_makes_a_greedy_temperature_one():
    code = '''\
        import math


        def lr_multiplier(progress, final_fraction):
            return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


        def weight_decay_at(wd, progress):
            return wd * 0.5 * (1.0 + math.cos(math.pi * progress))


        def answer(engine, prompt):
            return engine.generate(prompt, temperature=0.0)
        '''
    mutants = snippet_mutants(code, "constant-zeroed")
    term = [m for m in mutants if m.line == 5]
    assert [m.cause for m in term] == ["the factor 0.5 in what lr_multiplier returns is 0.0 in lr_multiplier: the "
                                       "term it scales vanishes"]
    decay = [m for m in mutants if m.line == 9]
    # zeroed in one return of a schedule: the knob is off where that return is taken, not said more
    assert [m.cause for m in decay] == ["the factor 0.5 in what weight_decay_at returns is 0.0 in weight_decay_at"]
    sampled = only(mutants, "1.0")
    assert sampled.cause == "temperature=1.0 instead of temperature=0.0 in answer: sampling is no longer greedy"
    assert "1.0" in sampled.cause_terms[1]
    assert len(mutants) == 3


def test_constant_zeroed_leaves_sizes_seeds_epsilons_bounds_neutral_values_and_reports_alone():
    code = '''\
        import torch


        def misc(x, w, s, model, loader, lr, final_fraction, log):
            y = x.softmax(dim=-1).clamp(min=0.0, max=1.0)
            opt = torch.optim.AdamW(model.parameters(), lr=lr, eps=1e-8, weight_decay=0.0)
            torch.nn.init.normal_(w, mean=0.0, std=s)
            torch.nn.init.uniform_(w, -0.1, 0.1)
            g = torch.Generator().manual_seed(42)
            batches = loader(batch_size=64, num_workers=4, seed=0)
            decayed = schedule(final_fraction=0.1)
            print(f"lr {lr * 0.5}")
            log(lr=0.1)
            return y, opt, g, batches, decayed
        '''
    mutants = snippet_mutants(code, "constant-zeroed")
    # final_fraction=0.1 -> 1.0 is constant-magnitude's (x10): only its zero is new
    assert [m.cause for m in mutants] == ["final_fraction=0.0 instead of final_fraction=0.1 in misc: the learning "
                                          "rate decays to zero"]
