"""No layer but a codebase's own module says a codebase's name (issue 17): the server, the evals
and the sandbox take a codebase object (sandbox/codebases) and ask it.

Code is scanned, not prose: identifiers and string literals count, comments and docstrings do
not (they may name a codebase as an example). The codebases' own places are exempt: their
modules under sandbox/codebases/, the built-in codebase's template, the catalogue's edit and
check modules (bug_catalog/bugs/ and its helpers bug_catalog/support.py for the built-in
codebase, bug_catalog/targets/ for others), the built-in codebase's scenario table and the
catalogue's validation matrix (sandbox/scenarios.py, sandbox/matrix.py, bug_catalog/validate.py:
the catalogue's runs, measured on it), and two scripted players of its episodes whose knowledge
of its files is a player's, not a layer's (evals/rulebook.py, the reference agent's rule book;
evals/adversary_agent.py, the integrity attacks)."""

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("nanochat", "picochat")
LAYERS = ("server", "evals", "sandbox", "bug_catalog", "bug_synth", "bugdrill")
OWN_PLACES = ("sandbox/codebases/", "sandbox/templates/", "bug_catalog/bugs/", "bug_catalog/targets/",
              "bug_catalog/support.py", "sandbox/scenarios.py", "sandbox/matrix.py", "bug_catalog/validate.py",
              "evals/rulebook.py", "evals/adversary_agent.py")


def docstring_lines(source):
    """Line numbers of the module's, classes' and functions' docstrings."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def named_in_code(path):
    """[(line, token)] of identifiers and string literals in `path` that say a codebase's name."""
    source = path.read_text()
    skip = docstring_lines(source)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.NAME, tokenize.STRING) or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            if token.start[0] not in skip and any(name in token.string.lower() for name in NAMES):
                found.append((token.start[0], token.string[:60]))
    return found


def test_no_layer_outside_a_codebase_module_names_a_codebase():
    offenders = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(OWN_PLACES):
                continue
            offenders += [f"{relative}:{line}: {text}" for line, text in named_in_code(path)]
    assert not offenders, "codebase names outside their codebase's module:\n" + "\n".join(offenders)


def test_the_scan_sees_a_name_in_code_and_not_in_prose(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""About nanochat."""\n# nanochat here\nx = "on nanochat"\nif kind == "picochat":\n    pass\n')
    assert [line for line, _ in named_in_code(sample)] == [3, 4]
