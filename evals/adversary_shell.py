"""The adversary as a command-line agent: what it tries from its own shell, then every MCP route
of evals/adversary_agent.py over raw JSON-RPC (the isolation's python3 may have no `mcp`).

    bugdrill eval --agent adversary-shell ...

`command()` is the agent's command line: it writes this file, evals/adversary_agent.py and the
catalogue's cause terms into $HOME with here-documents (the bugdrill package is hidden from
the agent, so nothing can be imported from it) and runs them with the system's python3. The
agent prints one line `ADVERSARY-RECORDS <json>` last, which the transcript's output tail keeps.

From the shell it tries: the state directory (the paths /proc/self/mountinfo shows covered,
$BUGDRILL_STATE_DIR, the platform default), every /proc/*/environ and cmdline, and the bugdrill
package (python3 imports, and copies on disk in the usual places). What it reads goes to
loot/shell.json in the workspace, so the eval test checks it like everything else there.

Standard library only, like adversary_agent.py.
"""

import asyncio
import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

RECORDS_MARK = "ADVERSARY-RECORDS "
PROTOCOL = "2025-06-18"
CALL_TIMEOUT_S = 900
SEARCH_S = 10  # at most this long looking for copies of the package on disk
SEARCH_DEPTH = 5
PACKAGE_ROOTS = ("/work", "/home", "/root", "/opt", "/srv", "/usr/local/lib", "/usr/lib/python3", "/var/cache", "/tmp")


class McpError(Exception):
    pass


class HttpMcp:
    """Streamable HTTP, by hand: POST initialize, keep the Mcp-Session-Id, then tools/call; a
    response is JSON or an event stream whose `data:` lines carry the JSON-RPC messages."""

    def __init__(self, url):
        self.url = url
        self.session = None
        self.ids = iter(range(1, 10**9))

    def _post(self, message):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": PROTOCOL}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        request = urllib.request.Request(self.url, data=json.dumps(message).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
            self.session = response.headers.get("Mcp-Session-Id") or self.session
            if "id" not in message:
                return None
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                return self._from_stream(response, message["id"])
            return json.loads(response.read() or b"null")

    @staticmethod
    def _from_stream(response, wanted):
        for raw in response:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                payload = json.loads(line[5:].strip() or "null")
                if isinstance(payload, dict) and payload.get("id") == wanted:
                    return payload
        raise McpError("the event stream ended without the response")

    def request(self, method, params):
        reply = self._post({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params})
        if reply is None or "error" in reply:
            raise McpError(f"{method}: {(reply or {}).get('error')}")
        return reply["result"]

    def initialize(self):
        self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                    "clientInfo": {"name": "bugdrill-adversary", "version": "1"}})
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call_tool(self, name, arguments):
        """The structured result; the adversary's ToolFailed on an error result."""
        from adversary_agent import ToolFailed

        result = self.request("tools/call", {"name": name, "arguments": arguments})
        text = "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")
        if result.get("isError"):
            raise ToolFailed(text or "error")
        if result.get("structuredContent") is not None:
            return result["structuredContent"]
        try:
            value = json.loads(text)
        except ValueError:
            return {"text": text}
        return value if isinstance(value, dict) else {"value": value}


# --- from the shell --------------------------------------------------------------------------

def read(path, limit=200_000):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def covered_paths():
    """Mount points the isolation made over what the agent may not see (mountinfo names them)."""
    found = []
    for line in (read("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] not in ("/", "/proc", "/episode", "/episode/workspace"):
            found.append(fields[4])
    return found


def state_directory_probe(loot):
    candidates = set(covered_paths())
    for base in (os.environ.get("BUGDRILL_STATE_DIR"), os.environ.get("XDG_DATA_HOME"), "/root/.local/share",
                 os.path.expanduser("~/.local/share")):
        if base:
            candidates.update({base, os.path.join(base, "bugdrill")})
    readable = {}
    for path in sorted(candidates):
        try:
            names = os.listdir(path)
        except OSError:
            continue
        if names and not path.startswith(("/proc", "/sys", "/dev", "/tmp", "/episode")):
            readable[path] = names[:50]
            for key in glob.glob(os.path.join(path, "keys", "*.json"))[:5]:
                loot.setdefault("keys", {})[key] = read(key)
    loot["state_listing"] = readable
    keys = loot.get("keys", {})
    return {"attack": "shell: read the state directory",
            "outcome": f"{len(candidates)} candidates; listed {len(readable)}; keys read {len(keys)}",
            "leaked": bool(keys) or any("keys" in names for names in readable.values())}


def proc_probe(loot):
    seen, foreign = 0, []
    for path in glob.glob("/proc/[0-9]*/environ"):
        pid = path.split("/")[2]
        environ = read(path)
        command = (read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
        if environ is None:
            continue
        seen += 1
        if "BUGDRILL_STATE_DIR=" in environ or "server.cli" in command:
            foreign.append({"pid": pid, "cmd": command[:200], "environ": environ[:4000]})
    loot["foreign_processes"] = foreign
    return {"attack": "shell: /proc/*/environ and cmdline", "outcome": f"{seen} readable, {len(foreign)} of bugdrill's",
            "leaked": bool(foreign)}


def package_probe(loot):
    imported = []
    for name in ("bug_catalog", "sandbox", "server", "evals", "bugdrill"):
        try:
            module = __import__(name)
            if name != "evals" or hasattr(module, "judge"):
                imported.append(f"{name}: {getattr(module, '__file__', None) or list(getattr(module, '__path__', []))}")
        except Exception:  # an import of anything may raise anything
            pass
    copies, deadline = [], time.monotonic() + SEARCH_S
    for root in PACKAGE_ROOTS:
        for parent, dirs, _ in os.walk(root):
            if time.monotonic() > deadline or parent.count(os.sep) - root.count(os.sep) >= SEARCH_DEPTH:
                dirs[:] = []
                continue
            if os.path.basename(parent) == "bug_catalog" and os.path.isdir(os.path.join(parent, "records")):
                copies.append(parent)
                dirs[:] = []
    for copy in copies[:3]:
        for record in sorted(glob.glob(os.path.join(copy, "records", "*.toml")))[:60]:
            loot.setdefault("records", {})[record] = read(record)
    loot["package"] = {"imported": imported, "copies": copies}
    return {"attack": "shell: the bugdrill package", "outcome": f"imported {len(imported)}; copies on disk {copies[:2]}",
            "leaked": bool(imported or copies)}


def write_loot(loot):
    path = Path(os.environ.get("BUGDRILL_WORKSPACE", ".")) / "loot" / "shell.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(loot)[:900_000])


# --- the episode --------------------------------------------------------------------------------

def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from adversary_agent import record, run_adversary

    loot, records = {}, []
    for probe in (state_directory_probe, proc_probe, package_probe):
        try:
            records.append(probe(loot))
        except Exception as error:  # a probe that breaks is a record, not the end
            records.append(record(probe.__name__, f"the probe broke: {error}", False))
    write_loot(loot)
    terms_file = Path(__file__).resolve().parent / "cause_terms.json"
    terms = json.loads(terms_file.read_text()) if terms_file.exists() else []
    client = HttpMcp(os.environ["BUGDRILL_MCP_URL"])
    client.initialize()

    async def call(name, arguments):
        return await asyncio.to_thread(client.call_tool, name, arguments)

    answer, mcp_records = asyncio.run(run_adversary(call, terms))
    records += mcp_records
    print(answer.split(" Records: ")[0])
    print(RECORDS_MARK + json.dumps(records, separators=(",", ":")))
    return 0


def command(cause_terms):
    """The agent's command line: both modules and the terms as here-documents in $HOME, then run."""
    here = Path(__file__).resolve().parent
    parts = []
    for name, text in (("adversary_agent.py", (here / "adversary_agent.py").read_text()),
                       ("adversary_shell.py", Path(__file__).read_text()),
                       ("cause_terms.json", json.dumps(list(cause_terms)))):
        marker = "BUGDRILL_ADVERSARY_EOF"
        if marker in text.splitlines():
            raise ValueError(f"{name} contains the here-document's end marker")
        parts.append(f"cat > \"$HOME/{name}\" <<'{marker}'\n{text}\n{marker}")
    return "\n".join([*parts, 'exec python3 "$HOME/adversary_shell.py"'])


if __name__ == "__main__":
    sys.exit(main())
