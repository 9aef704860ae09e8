"""The server's tools, one module per group; each has `register(server, ctx)`.

A new group (training runs, telemetry views) is a module with a `register` function added to
GROUPS; app.build_server calls them in order."""

from server.tools import catalog, grading, interview, progress, training, workspace

GROUPS = [catalog, interview, workspace, training, grading, progress]
