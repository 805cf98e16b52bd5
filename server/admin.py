"""ZooKeeper's AdminServer: `GET /commands/<name>` answers JSON, `GET /commands` lists them.

Each command is one of `commands`' data functions (the same data the four-letter words print
as text) under ZooKeeper's names and aliases, wrapped as ZooKeeper wraps it:
`{"command": <primary name>, "error": null, ...fields}`. `snapshot` streams a consistent
backup of the tree (server/backup_stream.py). Served on `admin.serverAddress:admin.serverPort`
by `http_server`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from . import commands
from .commands import NOT_SERVING, ServerView
from .http_server import HttpServer, Request, Response, json_default

log = logging.getLogger(__name__)

PREFIX = "/commands"


@attrs.frozen
class Command:
    names: tuple[str, ...]  # the primary name first, as ZooKeeper lists it
    run: Callable[[ServerView], dict[str, Any]]
    needs_serving: bool = True  # a server between leaders has nothing true to say

    @property
    def primary(self) -> str:
        return self.names[0]


COMMANDS = (
    Command(("ruok",), lambda s: {}, needs_serving=False),
    Command(("server_stats", "srvr"), commands.srvr),
    Command(("stats", "stat"), commands.stat),
    Command(("monitor", "mntr"), commands.monitor, needs_serving=False),
    Command(("configuration", "conf", "config"), commands.conf),
    Command(("connections", "cons"), lambda s: {"connections": commands.connection_info(s), "secure_connections": []}),
    Command(("watch_summary", "wchs"), commands.watch_summary),
    Command(("watches", "wchc"), lambda s: {"session_id_to_watched_paths": commands.watches_by_session(s)}),
    Command(("watches_by_path", "wchp"), lambda s: {"path_to_session_ids": commands.watches_by_path(s)}),
    Command(("dump",), commands.dump),
    Command(("environment", "env", "envi"), commands.environment, needs_serving=False),
    Command(("leader", "lead"), commands.leader, needs_serving=False),
    Command(("is_read_only", "isro"), commands.is_read_only),
    Command(("voting_view",), commands.voting_view, needs_serving=False),
    Command(("stat_reset", "srst"), commands.reset_stats),
)
BY_NAME = {name: c for c in COMMANDS for name in c.names}
# Commands whose handler is not a data function (they stream): name -> primary name.
STREAMED = {"snapshot": "snapshot", "snap": "snapshot"}


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status, json.dumps(body, default=json_default, indent=2).encode() + b"\n")


def run_command(server: ServerView, name: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of one data command."""
    command = BY_NAME.get(name)
    if command is None:
        return 404, {"command": name, "error": f"Unknown command: {name}"}
    if command.needs_serving and not commands.answering(server):
        return 503, {"command": command.primary, "error": NOT_SERVING}
    body: dict[str, Any] = {"command": command.primary, "error": None}
    body.update(command.run(server))
    return 200, body


StreamHandler = Callable[[Request], Awaitable[Response]]


class AdminServer:
    """The HTTP face of a server's monitoring commands; `snapshot` is handed to `stream`."""

    def __init__(self, server: ServerView, host: str, port: int, snapshot: StreamHandler | None = None) -> None:
        self.server = server
        self.snapshot = snapshot
        self.http = HttpServer("admin server", host, port, self.handle)

    @property
    def port(self) -> int | None:
        return self.http.port

    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == PREFIX:
            names = sorted([c.primary for c in COMMANDS] + (["snapshot"] if self.snapshot else []))
            return _json(200, {"commands": names, "links": [f"{PREFIX}/{n}" for n in names]})
        if not path.startswith(PREFIX + "/"):
            return _json(404, {"error": f"no such resource {request.path}; see {PREFIX}"})
        name = path[len(PREFIX) + 1 :]
        if name in STREAMED and self.snapshot is not None:
            return await self.snapshot(request)
        status, body = run_command(self.server, name)
        return _json(status, body)
