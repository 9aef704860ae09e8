"""The mutation operators of synthesized bugs (bug_synth/operators): every family finds sites on
picochat, every mutant is a compilable, different file that is the original everywhere but at its
site, the same input gives the same mutants, and a few families make exactly the edit they name."""

import ast
import textwrap
from collections import Counter

import libcst as cst
import pytest

from bug_synth import operators
from bug_synth.operators.source import Site, parse
from sandbox.codebases import builtin
from sandbox.workspace import read_codebase


@pytest.fixture(scope="module")
def picochat_files():
    return read_codebase(builtin().source)


@pytest.fixture(scope="module")
def picochat_mutants(picochat_files):
    return list(operators.mutants(picochat_files))


def snippet_mutants(code, family, path="snippet.py"):
    return list(operators.mutants({path: textwrap.dedent(code)}, [family]))


def only(mutants, after):
    matching = [m for m in mutants if m.after == after]
    assert len(matching) == 1, [m.after for m in mutants]
    return matching[0]


def first_line(node):
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def unchanged_ends(old, new):
    """How many lines the two texts share at the start, and at the end."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return head, tail


def function_ranges(tree):
    """(first line, last line) of every function, and of every top-level statement."""
    return [(first_line(node), node.end_lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))] + [
        (first_line(node), node.end_lineno) for node in tree.body]


# -- every family, on picochat

def test_every_family_finds_sites_on_picochat_in_sane_numbers(picochat_mutants):
    counts = Counter(m.family for m in picochat_mutants)
    assert len(operators.FAMILIES) >= 22
    for name in operators.FAMILIES:
        assert 1 <= counts[name] <= 150, (name, counts[name])
    assert 600 <= len(picochat_mutants) <= 3000


def test_families_are_described_for_the_readme_table():
    for name, family in operators.FAMILIES.items():
        assert family.name == name and name == name.lower() and " " not in name
        assert family.theme and family.description and "\n" not in family.description


def test_every_mutant_compiles_and_its_ast_differs_from_the_original(picochat_files, picochat_mutants):
    trees = {path: ast.parse(text) for path, text in picochat_files.items() if path.endswith(".py")}
    dumps = {}
    for mutant in picochat_mutants:
        compile(mutant.text, mutant.file, "exec")
        old, new = picochat_files[mutant.file].splitlines(), mutant.text.splitlines()
        head, tail = unchanged_ends(old, new)
        body = trees[mutant.file].body
        index = next(i for i, node in enumerate(body) if first_line(node) <= mutant.line <= node.end_lineno)
        start, end = first_line(body[index]), body[index].end_lineno
        # the lines around the top-level statement that holds the change are the original's (next
        # test), so the file's AST differs exactly when this statement's does
        assert tail >= len(old) - end, (mutant.family, mutant.file, mutant.line)
        chunk = "\n".join(new[min(start - 1, head):len(new) - (len(old) - end)])
        if (mutant.file, index) not in dumps:
            dumps[mutant.file, index] = ast.dump(body[index])
        (changed,) = ast.parse(chunk).body
        assert ast.dump(changed) != dumps[mutant.file, index], (mutant.family, mutant.file, mutant.line)


def test_a_mutant_is_the_original_outside_its_function_but_for_the_comments_above_the_change(
        picochat_files, picochat_mutants):
    functions = {path: function_ranges(ast.parse(text)) for path, text in picochat_files.items()
                 if path.endswith(".py")}
    for mutant in picochat_mutants:
        old, new = picochat_files[mutant.file].splitlines(), mutant.text.splitlines()
        head, tail = unchanged_ends(old, new)
        changed = list(range(head + 1, len(old) - tail + 1))  # 1-based lines of the original
        while changed and old[changed[0] - 1].strip().startswith("#"):
            changed.pop(0)  # the comment that narrated the statement goes with it
        # the innermost function around the change, or the top-level statement of a script
        start, end = max((r for r in functions[mutant.file] if r[0] <= mutant.line <= r[1]), key=lambda r: r[0])
        assert all(start <= line <= end for line in changed), (mutant.family, mutant.file, mutant.line, changed)
        assert 1 <= mutant.line <= len(old) and mutant.function, (mutant.family, mutant.line)  # none at module level


def test_mutants_parse_with_libcst(picochat_mutants):
    # the first mutant of each family: a libcst parse of every mutant takes half a minute
    firsts = {}
    for mutant in picochat_mutants:
        firsts.setdefault(mutant.family, mutant)
    for mutant in firsts.values():
        cst.parse_module(mutant.text)


def test_causes_name_the_fault_not_the_operator(picochat_mutants):
    for mutant in picochat_mutants:
        assert "mutat" not in mutant.cause.lower() and mutant.family not in mutant.cause, mutant.cause
        assert mutant.cause_terms and all(group and all(t == t.lower() and t.strip() for t in group)
                                          for group in mutant.cause_terms), (mutant.family, mutant.cause_terms)


def test_the_same_files_give_the_same_mutants_in_the_same_order(picochat_files):
    files = {path: picochat_files[path] for path in ("picochat/engine.py", "picochat/optim.py")}

    def run():
        parse.cache_clear()
        return [(m.family, m.file, m.line, m.before, m.after, m.text) for m in operators.mutants(files)]

    first = run()
    assert first and first == run()
    registry = list(operators.FAMILIES)
    keys = [(path, registry.index(family)) for family, path, *_ in first]
    assert keys == sorted(keys)  # files in sorted order, then families in registry order


def test_an_unknown_family_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError) as error:
        list(operators.mutants({"a.py": "x = 1\n"}, ["reduction-axis", "no-such-family"]))
    assert "no-such-family" in str(error.value) and "reduction-axis" in str(error.value)
    assert "step-order" in str(error.value)


def test_families_can_be_chosen(picochat_files):
    files = {"picochat/gpt.py": picochat_files["picochat/gpt.py"]}
    chosen = list(operators.mutants(files, ["norm-dropped", "residual-dropped"]))
    assert {m.family for m in chosen} == {"norm-dropped", "residual-dropped"}


# -- where families may not look

def test_imports_constants_class_bodies_main_blocks_argparse_prints_and_tests_are_never_mutated():
    code = textwrap.dedent('''\
        import argparse
        import torch.nn.functional as F

        SCALE = 0.5 * 2.0
        LIMITS = {"low": F.softmax(SCALE, dim=-1)}


        class Config:
            width: float = 0.5 * 2.0
            probs = F.softmax(SCALE, dim=-1)


        def parse():
            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float, default=0.001)
            return parser.parse_args()


        def report(x, step):
            print(f"step {step + 1}: {F.softmax(x, dim=-1)}", flush=step > 0)
            return x


        if __name__ == "__main__":
            y = F.softmax(SCALE, dim=-1)
            if y > 0.5:
                print(y)
        ''')
    assert list(operators.mutants({"train.py": code})) == []
    assert list(operators.mutants({"tests/test_train.py": code + "\n\ndef f(x):\n    return x < 1\n"})) == []


def test_functions_and_the_statements_of_a_script_are_mutated():
    code = textwrap.dedent('''\
        import torch.nn.functional as F

        STEPS = 10


        def attend(scores):
            return F.softmax(scores, dim=-1)


        for step in range(STEPS):
            probs = F.softmax(logits, dim=-1)
        ''')
    found = {(m.line, m.function) for m in operators.mutants({"train.py": code}, ["reduction-axis"])}
    assert found == {(7, "attend"), (11, "")}
    (script,) = [m for m in operators.mutants({"train.py": code}, ["range-bound"])]
    assert script.after == "STEPS - 1" and "at module level" in script.cause


def test_an_edit_that_leaves_the_ast_as_it_was_makes_no_mutant():
    source = parse("snippet.py", "def f(a, b):\n    return a + b\n")
    (plus,) = source.nodes(cst.BinaryOperation)
    bracketed = plus.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    assert source.mutant("demo", Site(plus, bracketed, "demo", (("demo",),))) is None
    swapped = plus.with_changes(left=plus.right, right=plus.left)
    assert source.mutant("demo", Site(plus, swapped, "demo", (("demo",),))).after == "b + a"


def test_a_file_libcst_cannot_parse_has_no_mutants():
    assert list(operators.mutants({"broken.py": "def f(:\n    return 1\n"})) == []


# -- exact edits

def test_reduction_axis_moves_softmax_off_the_last_dim_and_drops_the_narrating_comments():
    code = '''\
        import torch.nn.functional as F


        def attend(scores):
            # normalise over the keys
            probs = F.softmax(scores, dim=-1)  # one distribution per query
            return probs
        '''
    mutant = only(snippet_mutants(code, "reduction-axis"), "F.softmax(scores, dim=0)")
    assert mutant.before == "F.softmax(scores, dim=-1)" and mutant.line == 6 and mutant.function == "attend"
    assert mutant.text == textwrap.dedent('''\
        import torch.nn.functional as F


        def attend(scores):
            probs = F.softmax(scores, dim=0)
            return probs
        ''')
    assert "softmax" in mutant.cause and "dim 0" in mutant.cause and "attend" in mutant.cause
    assert ("softmax",) in mutant.cause_terms


def test_residual_dropped_keeps_only_the_branch():
    code = '''\
        class Block:
            def forward(self, x):
                x = x + self.attn(self.norm(x))
                return x
        '''
    mutant = only(snippet_mutants(code, "residual-dropped"), "self.attn(self.norm(x))")
    assert "    x = self.attn(self.norm(x))\n" in mutant.text and mutant.function == "Block.forward"


def test_step_order_swaps_two_adjacent_optimizer_statements():
    code = '''\
        def train(model, optimizer, scheduler, loss):
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        '''
    mutants = snippet_mutants(code, "step-order")
    texts = {m.text for m in mutants}
    assert textwrap.dedent('''\
        def train(model, optimizer, scheduler, loss):
            loss.backward()
            scheduler.step()
            optimizer.step()
            optimizer.zero_grad()
        ''') in texts
    assert len(mutants) == 3


def test_slice_bound_turns_targets_into_inputs():
    code = '''\
        def window(chunk):
            return chunk[:-1], chunk[1:]
        '''
    mutant = only(snippet_mutants(code, "slice-bound"), "chunk[:-1]")
    assert mutant.text.endswith("return chunk[:-1], chunk[:-1]\n")


def test_flag_flipped_turns_shuffling_off():
    code = '''\
        def loader(data):
            return DataLoader(data, batch_size=8, shuffle=True)
        '''
    mutant = only(snippet_mutants(code, "flag-flipped"), "False")
    assert "shuffle=False" in mutant.text and "shuffl" in mutant.cause_terms[0]


def test_no_grad_dropped_unwraps_the_block_at_its_own_indentation():
    code = '''\
        def evaluate(model, x):
            with torch.no_grad():
                y = model(x)
                z = y * 2
            return z
        '''
    (mutant,) = snippet_mutants(code, "no-grad-dropped")
    assert mutant.text == textwrap.dedent('''\
        def evaluate(model, x):
            y = model(x)
            z = y * 2
            return z
        ''')


def test_eps_outside_brackets_what_it_moves():
    code = '''\
        def norm(x, eps):
            return x * torch.rsqrt(x.pow(2).mean() + eps)
        '''
    (mutant,) = snippet_mutants(code, "eps-outside")
    assert mutant.text.endswith("return x * (torch.rsqrt(x.pow(2).mean()) + eps)\n")


def test_transform_dropped_removes_a_step_with_its_comment_and_keeps_the_blank_line():
    code = '''\
        def forward(q, k, cos, sin):
            q = q * 2

            # rotate before attending
            q, k = rotary(q, cos, sin), rotary(k, cos, sin)
            return q @ k
        '''
    (mutant,) = [m for m in snippet_mutants(code, "transform-dropped") if m.line == 5]
    assert mutant.before == "q, k = rotary(q, cos, sin), rotary(k, cos, sin)" and mutant.after == ""
    assert mutant.text == textwrap.dedent('''\
        def forward(q, k, cos, sin):
            q = q * 2

            return q @ k
        ''')


def test_a_statement_alone_in_its_block_is_never_removed():
    code = '''\
        def step(optimizer):
            if optimizer is not None:
                optimizer.zero_grad()
        '''
    removed_inside = [m for m in snippet_mutants(code, "step-call-dropped")]
    assert removed_inside == []
