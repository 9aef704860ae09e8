"""Random arguments, valid-looking and not, at every tool that does not train, in both roles
(hypothesis): every answer is a result or a clear tool error, never an unanticipated exception,
and the server keeps serving."""

import json

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from server.app import build_server

EXAMPLES = 20
ROLES = ("interviewer", "candidate", "bound")
TOOLS = {  # end_interview last: the bound server has only one interview to end
    "interviewer": ["list_bugs", "start_interview", "interview_status", "get_snippet", "get_hint", "reveal",
                    "list_files", "read_file", "search_code", "edit_file", "verify_fix", "submit_diagnosis",
                    "get_progress", "record_note", "end_interview"],
}
TOOLS["candidate"] = [t for t in TOOLS["interviewer"] if t != "reveal"]
TOOLS["bound"] = [t for t in TOOLS["candidate"] if t not in ("start_interview", "list_bugs")]
PATHS = ["scripts/base_train.py", "picochat/gpt.py", ".", "..", "../..", "/etc/passwd", ".git/config", "a/../../b",
         "~/x", "C:\\x", "picochat", "new/dir/file.txt", "x" * 300, "\u00e9t\u00e9.py", "scripts/", ""]
WORDS = ["random", "1", "54", "zero-grad", "code_review", "production_debugging", "practice", "training", "easy",
         "(", ".*", "[a-", "def ", "\\", "a" * 5000, "\x00", "builtin", "/tmp", "0123456789ab"]


WORKSPACES = {}  # interview name -> its workspace, as start_interview gave it


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One in-process client per role, kept open across examples through a blocking portal."""
    patch = pytest.MonkeyPatch()
    patch.setenv("BUGDRILL_STATE_DIR", str(tmp_path_factory.mktemp("fuzz") / "state"))
    patch.setenv("OMP_NUM_THREADS", "1")
    with start_blocking_portal() as portal:
        interviewer = portal.wrap_async_context_manager(Client(build_server("interviewer", max_verify=1)))
        client = interviewer.__enter__()
        ids = {}
        for name, kind, bug in (("target", "code_review", 4), ("sacrifice", "practice", 13)):
            result = portal.call(client.call_tool, "start_interview", {"kind": kind, "bug": bug, "seed": 1})
            ids[name] = result.structured_content["interview_id"]
            WORKSPACES[name] = result.structured_content["workspace"]
        managers = {"interviewer": interviewer,
                    "candidate": portal.wrap_async_context_manager(Client(build_server("candidate", max_verify=1))),
                    "bound": portal.wrap_async_context_manager(
                        Client(build_server("candidate", interview_id=ids["target"], max_verify=1)))}
        clients = {"interviewer": client, **{r: managers[r].__enter__() for r in ("candidate", "bound")}}
        yield portal, clients, ids
        for role in ("bound", "candidate", "interviewer"):
            managers[role].__exit__(None, None, None)
    patch.undo()


def typed(schema, ids):
    """Values of a property's JSON schema, mostly valid, sometimes at its edges."""
    if "anyOf" in schema:
        return st.one_of([typed(branch, ids) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum", -10), schema.get("maximum", 10**6)
        return st.one_of(st.integers(low, min(high, low + 100)), st.sampled_from([low, high]))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**6)
        fitting = [w for w in PATHS + WORDS + [ids["target"]] if low <= len(w) <= high]
        return st.one_of(st.sampled_from(fitting), st.text(min_size=low, max_size=max(low, min(high, 30))))
    return st.none()


def junk():
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                     st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def arguments(schema, ids, interview):
    """Mostly well-formed arguments (so that calls get past the schema into the tool), some not."""
    values = {}
    for name, prop in schema.get("properties", {}).items():
        good = typed(prop, ids)
        if name == "interview_id":
            good = st.sampled_from([interview] * 4 + ["0123456789ab", "nope", None])
        values[name] = weighted(good, junk(), 8)
    required = {name: values[name] for name in schema.get("required", []) + ["interview_id"] if name in values}
    optional = {name: v for name, v in values.items() if name not in required}
    well_formed = st.fixed_dictionaries(required, optional=optional)
    anything = st.fixed_dictionaries({}, optional={**values, "unexpected": junk()})
    return weighted(well_formed, anything, 3)


def weighted(usual, rare, odds):
    """`usual` `odds` times as often as `rare` (st.one_of picks its branches evenly)."""
    return st.integers(0, odds).flatmap(lambda n: rare if n == 0 else usual)


def pristine_again(workspace):
    """The workspace back to the pristine code, whatever edit_file's examples left in it: the one
    verification the limit allows is then judged without runs (byte for byte the pristine code);
    checks and runs of verify_fix are played in tests/test_fixed_by_behaviour.py and elsewhere."""
    import subprocess

    from sandbox.workspace import restore_workspace

    subprocess.run(["git", "reset", "--quiet", "--hard"], cwd=workspace, check=True)
    subprocess.run(["git", "clean", "--quiet", "-fdx"], cwd=workspace, check=True)
    restore_workspace(workspace)


@pytest.mark.parametrize("role,tool", [(role, tool) for role in ROLES for tool in TOOLS[role]])
def test_random_arguments_never_crash_a_tool(servers, role, tool):
    portal, clients, ids = servers
    client = clients[role]
    schemas = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}
    assert tool in schemas
    # end_interview gets an interview of its own, so the others keep an open one to dig into
    interview = ids["sacrifice"] if tool == "end_interview" and role != "bound" else ids["target"]
    if tool == "verify_fix":
        pristine_again(WORKSPACES["target"])

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(args=arguments(schemas[tool], ids, interview))
    def check(args):
        result = portal.call(client.call_tool, tool, args)
        if result.is_error:
            text = result.content[0].text
            assert text.strip() != f"Error executing tool {tool}", f"{tool}({args!r}) crashed"
            assert text.strip(), f"{tool}({args!r}) gave an empty error"
        else:
            assert result.structured_content is not None, f"{tool}({args!r})"
            json.dumps(result.structured_content)

    check()
    assert not portal.call(client.call_tool, "interview_status", {}).is_error  # still serving


@settings(max_examples=25, deadline=None, database=None)
@given(name=st.sampled_from(["self_practice", "code_review_interview", "production_debugging_interview"]),
       args=st.dictionaries(st.sampled_from(["bug", "category", "difficulty", "time_limit"]),
                            st.text(max_size=30), max_size=4))
def test_random_prompt_arguments_give_a_script(servers, name, args):
    portal, clients, _ = servers
    result = portal.call(clients["interviewer"].get_prompt, name, args)
    assert "start_interview(" in result.messages[0].content.text


def test_an_undeclared_prompt_argument_is_a_protocol_error(servers):
    portal, clients, _ = servers
    with pytest.raises(MCPError):
        portal.call(clients["interviewer"].get_prompt, "self_practice", {"colour": "blue"})
    assert not portal.call(clients["interviewer"].call_tool, "list_bugs", {}).is_error
