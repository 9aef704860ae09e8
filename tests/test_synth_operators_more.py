"""The families added after the first 52 (extremes, sizes, arithmetic, in-place, elements): each
makes exactly the edit it names on a snippet, says what is wrong in its cause, and leaves alone
the shapes that are another family's or no bug of its kind; and they come after the first 52 in the
registry (positions 52 to 57), so every text an older family makes keeps its family."""

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["extreme-swapped", "size-axis", "scale-inverted", "floor-division", "in-place-dropped", "tuple-index"]


def test_the_new_families_come_after_every_older_one():
    # later themes follow them (test_synth_operators_keywords.py and others)
    assert list(operators.FAMILIES)[52:58] == NEW_FAMILIES


# -- extreme-swapped

def test_extreme_swapped_takes_the_maximum_of_a_warmup_fraction():
    code = '''\
        def schedule(step, warmup):
            return min(1.0, step / max(1, warmup))
        '''
    mutants = snippet_mutants(code, "extreme-swapped")
    mutant = only(mutants, "max(1.0, step / max(1, warmup))")
    assert mutant.before == "min(1.0, step / max(1, warmup))"
    assert mutant.text.endswith("    return max(1.0, step / max(1, warmup))\n")
    assert mutant.cause == "the maximum is used where the minimum is meant in schedule"
    assert any("min" in group for group in mutant.cause_terms) and any("max" in g for g in mutant.cause_terms)
    only(mutants, "min(1, warmup)")


def test_extreme_swapped_turns_argmax_to_argmin_and_a_clamps_upper_bound_into_a_lower_one():
    code = '''\
        import torch


        def decode(logits, norm, max_norm):
            coef = torch.clamp(max_norm / norm, max=1.0)
            return logits.argmax(dim=-1) * coef
        '''
    mutants = snippet_mutants(code, "extreme-swapped")
    clamp = only(mutants, "torch.clamp(max_norm / norm, min=1.0)")
    assert "a lower bound (min=1.0) where an upper bound (max=1.0) is meant in decode" in clamp.cause
    argmin = only(mutants, "logits.argmin(dim=-1)")
    assert "index of the minimum" in argmin.cause and "index of the maximum" in argmin.cause
    assert len(mutants) == 2


def test_extreme_swapped_leaves_the_maximum_of_one_iterable_and_positional_clamps_alone():
    code = '''\
        import math
        import torch


        def pad(batch, x):
            longest = max(len(inputs) for inputs in batch)
            return torch.clamp(x, 0.0, 1.0), longest, max(batch)
        '''
    assert snippet_mutants(code, "extreme-swapped") == []


# -- size-axis

def test_size_axis_reads_the_adjacent_dimension():
    code = '''\
        def update(k, x, q):
            T = k.size(2)
            C = x.shape[-1]
            B = q.size()[0]
            return T, C, B
        '''
    mutants = snippet_mutants(code, "size-axis")
    mutant = only(mutants, "k.size(1)")
    assert mutant.cause == "the size of dim 1 is read where dim 2's is meant in update"
    assert "size" in mutant.cause_terms[0] and "`k`" in mutant.cause_terms[1]
    only(mutants, "x.shape[-2]")
    only(mutants, "q.size()[1]")
    assert len(mutants) == 3


def test_size_axis_leaves_whole_shapes_variable_dims_and_slices_alone():
    code = '''\
        def sizes(x, d):
            B, T, C = x.size()
            return x.size(d), x.shape[:2], x.size(dim=d)
        '''
    assert snippet_mutants(code, "size-axis") == []


# -- scale-inverted

def test_scale_inverted_multiplies_by_the_temperature_it_should_divide_by():
    code = '''\
        def sample(logits, temperature, scale):
            logits = logits / temperature
            logits *= scale
            return logits
        '''
    mutants = snippet_mutants(code, "scale-inverted")
    mutant = only(mutants, "logits * temperature")
    assert mutant.cause == "logits is multiplied by temperature where it should be divided by it in sample"
    assert "temperature" in mutant.cause_terms[1]
    augmented = only(mutants, "logits /= scale")
    assert "divided by scale where it should be multiplied" in augmented.cause
    assert len(mutants) == 2


def test_scale_inverted_leaves_paths_sequences_ones_and_constant_products_alone():
    code = '''\
        def layout(base_dir, n, x):
            path = base_dir() / "checkpoints" / "latest.pt"
            rule, pad = "=" * 80, [0] * n
            return path, rule, pad, x * 1, x / 1.0, 2 * 3
        '''
    assert snippet_mutants(code, "scale-inverted") == []


# -- floor-division

def test_floor_division_floors_a_warmup_fraction_and_makes_a_head_size_a_float():
    code = '''\
        def warmup(step, warmup_steps, n_embd, n_head, loss, world):
            head_dim = n_embd // n_head
            loss /= world
            return (step + 1) / warmup_steps, head_dim, loss
        '''
    mutants = snippet_mutants(code, "floor-division")
    floored = only(mutants, "(step + 1) // warmup_steps")
    assert floored.cause == ("(step + 1) is floor-divided (//) by warmup_steps where a true division is meant in "
                             "warmup, so the fraction is lost")
    made_float = only(mutants, "n_embd / n_head")
    assert "where a floor division (//) is meant in warmup" in made_float.cause and "whole number" in made_float.cause
    only(mutants, "loss //= world")
    assert len(mutants) == 3


def test_floor_division_leaves_path_joins_and_constants_alone():
    code = '''\
        from pathlib import Path


        def where(checkpoint_dir, name):
            return checkpoint_dir / "latest.pt", Path(name) / name, 7 // 2
        '''
    assert snippet_mutants(code, "floor-division") == []


# -- in-place-dropped

def test_in_place_dropped_discards_a_weight_decay_update():
    code = '''\
        def step(p, lr, wd):
            # decoupled weight decay
            p.mul_(1 - lr * wd)
            return p
        '''
    (mutant,) = snippet_mutants(code, "in-place-dropped")
    assert mutant.before == "p.mul_(1 - lr * wd)" and mutant.after == "p.mul(1 - lr * wd)"
    assert mutant.text == "def step(p, lr, wd):\n    p.mul(1 - lr * wd)\n    return p\n"
    assert mutant.cause == ("mul(...) returns a new tensor that is discarded: the in-place update of p is lost "
                            "in step")
    assert "mul_" in mutant.cause_terms[0] and " p " in mutant.cause_terms[1]


def test_in_place_dropped_leaves_kept_results_updates_without_a_twin_and_functions_alone():
    code = '''\
        import torch


        def step(buf, grad, w, scaler, optimizer):
            g = buf.lerp_(grad, 0.9)
            buf.zero_()
            torch.nn.init.normal_(w)
            scaler.unscale_(optimizer)
            return g
        '''
    assert snippet_mutants(code, "in-place-dropped") == []


# -- tuple-index

def test_tuple_index_reads_the_other_element():
    code = '''\
        def unpack(model, x, losses):
            outputs = model(x)
            return outputs[0], losses[-1], model(x)[1]
        '''
    mutants = snippet_mutants(code, "tuple-index")
    mutant = only(mutants, "outputs[1]")
    assert mutant.cause == "element 1 of outputs is read where element 0 is meant in unpack"
    assert "outputs" in mutant.cause_terms[1]
    only(mutants, "losses[0]")
    only(mutants, "model(x)[0]")
    assert len(mutants) == 3


def test_tuple_index_leaves_shapes_slices_stores_variables_and_tables_alone():
    code = '''\
        def pick(x, out, i, table, y):
            out[0] = y
            return x.shape[0], x.size()[1], x[1:], x[i], table[10]
        '''
    assert snippet_mutants(code, "tuple-index") == []
