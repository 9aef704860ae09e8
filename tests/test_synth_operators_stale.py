"""The stale-value families (statement-swapped, statement-moved, loop-carried-reset, init-in-loop):
each makes exactly the reordering it names on a snippet, says in its cause what is read too early
or too late and where, and leaves alone what is no bug of its kind (a name with no older value,
statements that share nothing, two sums into one total, a device move, a path, a report, a loop
counter); and they come after the 68 older families, so every text those make keeps its family."""

from test_synth_operators import only, snippet_mutants

from bug_synth import operators

NEW_FAMILIES = ["statement-swapped", "statement-moved", "loop-carried-reset", "init-in-loop"]


def test_the_stale_families_come_after_the_68_older_ones():
    registry = list(operators.FAMILIES)
    assert registry.index("fill-swapped") == 67  # the last of the older families keeps its place
    assert registry[68:72] == NEW_FAMILIES  # their places, so a theme added later takes none of their texts
    assert {operators.FAMILIES[name].theme for name in NEW_FAMILIES} == {"stale"}


# -- statement-swapped

ATTEND = '''\
    import torch.nn.functional as F


    def attend(self, scores, mask, attn_mask, v):
        if attn_mask is not None:
            mask = mask & attn_mask
        scores = scores.masked_fill(~mask, float("-inf"))
        att = F.softmax(scores, dim=-1)
        return att @ v


    def hidden(self, x, kv_cache, T):
        for block in self.blocks:
            x = block(x, kv_cache)
        if kv_cache is not None:
            kv_cache.advance(T)
        return x
    '''


def test_statement_swapped_reads_the_scores_before_the_mask_is_applied():
    mutants = snippet_mutants(ATTEND, "statement-swapped")
    softmax = only(mutants, 'att = F.softmax(scores, dim=-1)\nscores = scores.masked_fill(~mask, float("-inf"))')
    assert softmax.before == 'scores = scores.masked_fill(~mask, float("-inf"))\natt = F.softmax(scores, dim=-1)'
    assert softmax.cause == ('`att = F.softmax(scores, dim=-1)` runs before `scores = scores.masked_fill(~mask, '
                             'float("-inf"))` in attend, so it reads scores before it is updated: its stale value '
                             'is used')
    assert softmax.cause_terms[0] == ("scores",) and "stale" in softmax.cause_terms[1]
    assert "    att = F.softmax(scores, dim=-1)\n    scores = scores.masked_fill(" in softmax.text
    masked = [m for m in mutants if m.before.startswith("if attn_mask")]
    assert len(masked) == 1 and "so it reads mask before it is updated" in masked[0].cause
    assert len(mutants) == 3  # and the cache (next test); `return` never moves


def test_statement_swapped_advances_the_cache_before_the_layers_read_it():
    (advanced,) = [m for m in snippet_mutants(ATTEND, "statement-swapped") if m.function == "hidden"]
    assert advanced.after == "if kv_cache is not None:\n    kv_cache.advance(T)\nfor block in self.blocks:\n" \
                             "    x = block(x, kv_cache)"
    assert advanced.cause == ("the block `if kv_cache is not None` runs before the loop `for block in self.blocks` "
                              "in hidden, so kv_cache is already updated when the loop `for block in self.blocks` "
                              "reads it")
    assert advanced.cause_terms[0] == ("kv_cache",)


def test_statement_swapped_works_on_the_statements_of_a_script():
    code = '''\
        for step in range(num_steps):
            lrm = get_lr_multiplier(step)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lrm
            optimizer.step()
        '''
    (mutant,) = snippet_mutants(code, "statement-swapped")
    assert mutant.function == "" and "    optimizer.step()\n    for group in optimizer.param_groups:\n" in mutant.text
    assert "so it reads optimizer.param_groups before it is updated" in mutant.cause and "at module level" in mutant.cause


def test_statement_swapped_leaves_alone_what_is_no_stale_read():
    code = '''\
        import time
        from pathlib import Path


        class Windows:
            def __init__(self, tokens, n):
                self.window = n + 1
                self.count = len(tokens) // self.window


        def misc(self, x, model, inputs, device, path, total, a, b, log):
            h = self.proj(x)
            y = self.norm(h)
            u = a + 1
            w = b + 2
            total += a
            total += b
            inputs = inputs.to(device)
            out = model(inputs)
            path = Path(path)
            path.parent.mkdir(parents=True)
            model.eval()
            n = sum(p.numel() for p in model.parameters())
            t0 = time.time()
            dt = time.time() - t0
            log(f"{dt} {y} {u} {w} {out} {n}")
            return total
        '''
    # h and self.window have no older value (a NameError, an AttributeError), u and w share
    # nothing, two sums commute, a tensor moved to its device, a path, a mode no call sees, a timing
    assert snippet_mutants(code, "statement-swapped") == []


# -- statement-moved

def test_statement_moved_runs_backward_before_the_loss_is_divided():
    code = '''\
        def step(model, batch, accum, scaler):
            loss = model(batch)
            loss = loss / accum
            total = loss.detach()
            scaler.scale(loss).backward()
            return total
        '''
    # the division moved down would pass `total = loss.detach()`, which reads what it writes
    (mutant,) = snippet_mutants(code, "statement-moved")
    assert mutant.after == "scaler.scale(loss).backward()\nloss = loss / accum\ntotal = loss.detach()"
    assert mutant.cause == ("`scaler.scale(loss).backward()` runs before `loss = loss / accum` in step instead of "
                            "after it, so it reads loss before it is updated: its stale value is used")
    assert mutant.line == 5 and mutant.cause_terms[0] == ("loss",)
    assert "    scaler.scale(loss).backward()\n    loss = loss / accum\n" in mutant.text


def test_statement_moved_puts_the_mode_switch_after_the_evaluation_loop():
    code = '''\
        def evaluate(model, loader):
            model.eval()
            total = 0.0
            for x in loader:
                total += model(x).item()
            return total
        '''
    (mutant,) = snippet_mutants(code, "statement-moved")
    assert mutant.after == "total = 0.0\nfor x in loader:\n    total += model(x).item()\nmodel.eval()"
    assert mutant.cause == ("`model.eval()` runs after the loop `for x in loader` in evaluate instead of before it, "
                            "so the loop `for x in loader` runs model before it is switched to eval mode")
    assert mutant.cause_terms[0] == ("model",) and "mode" in mutant.cause_terms[1]
    assert snippet_mutants(code.replace("model(x)", "x"), "statement-moved") == []  # nothing runs the model


# -- loop-carried-reset

def test_loop_carried_reset_hoists_zero_grad_and_a_running_total():
    code = '''\
        def train(model, optimizer, loader):
            for x, y in loader:
                optimizer.zero_grad()
                loss = model(x, y)
                loss.backward()
                optimizer.step()


        def totals(batches):
            sums = []
            for batch in batches:
                total = 0
                for v in batch:
                    total += v
                sums.append(total)
            return sums
        '''
    mutants = snippet_mutants(code, "loop-carried-reset")
    grads = only(mutants, "optimizer.zero_grad()\nfor x, y in loader:")
    assert grads.cause == ("`optimizer.zero_grad()` runs once before the loop `for x, y in loader` instead of at "
                           "every iteration in train, so gradients are never zeroed between steps and accumulate "
                           "from one iteration to the next")
    assert "zero_grad" in grads.cause_terms[0] and "reset" in grads.cause_terms[1]
    assert grads.text.startswith("def train(model, optimizer, loader):\n    optimizer.zero_grad()\n"
                                 "    for x, y in loader:\n        loss = model(x, y)\n")
    total = only(mutants, "total = 0\nfor batch in batches:")
    assert "so total is never reset and carries over" in total.cause and total.cause_terms[0] == ("total",)
    assert "    total = 0\n    for batch in batches:\n        for v in batch:\n" in total.text
    assert len(mutants) == 2


def test_loop_carried_reset_leaves_alone_what_depends_on_the_loop_or_never_accumulates():
    code = '''\
        import torch


        def misc(loader, model, optimizer):
            for x in loader:
                optimizer.zero_grad()
                model.step(x)
            for i, x in enumerate(loader):
                buf = torch.zeros(i)
                buf += x
            for x in loader:
                last = None
                last = x
            return last, buf
        '''
    # no backward() to accumulate gradients, a reset that reads the loop variable, a value replaced
    assert snippet_mutants(code, "loop-carried-reset") == []


# -- init-in-loop

def test_init_in_loop_moves_a_total_and_a_generator_into_the_loop():
    code = '''\
        import torch


        def evaluate(model, loader, seed, device):
            total = torch.zeros((), device=device)
            generator = torch.Generator().manual_seed(seed)
            for x in loader:
                idx = torch.randperm(len(x), generator=generator)
                total += model(x[idx])
            return total
        '''
    mutants = snippet_mutants(code, "init-in-loop")
    total = only(mutants, "for x in loader:\n    total = torch.zeros((), device=device)")
    assert total.cause == ("`total = torch.zeros((), device=device)` runs at the start of every iteration of the "
                           "loop `for x in loader` instead of once before it in evaluate, so total starts afresh "
                           "each time and only the last iteration's part is kept")
    assert total.line == 5 and total.cause_terms[0] == ("total",) and "every iteration" in total.cause_terms[1]
    assert total.text.endswith(
        "    generator = torch.Generator().manual_seed(seed)\n    for x in loader:\n"
        "        total = torch.zeros((), device=device)\n        idx = torch.randperm(len(x), generator=generator)\n"
        "        total += model(x[idx])\n    return total\n")
    generator = only(mutants, "for x in loader:\n    generator = torch.Generator().manual_seed(seed)")
    assert "so generator is built anew each time and its state starts over" in generator.cause
    assert len(mutants) == 2


def test_init_in_loop_leaves_alone_counters_placeholders_views_and_reports():
    code = '''\
        import torch


        def misc(loader, n, buf, log):
            step = 0
            examples = []
            while len(examples) < n:
                examples.append(step)
                step += 1
            acc = torch.zeros(())
            for x in loader:
                acc = torch.zeros(())
                acc += x
            view = buf[:n]
            for x in loader:
                view.copy_(x)
            count = 0
            for x in loader:
                count += 1
                if count >= n:
                    break
            seen = 0
            for x in loader:
                seen += 1
            log(f"{seen}")
            return examples, acc
        '''
    # a counter and what the loop tests (the loop would never end), a value the loop sets afresh
    # itself, a view made again of the same buffer, a count only logged
    assert snippet_mutants(code, "init-in-loop") == []
