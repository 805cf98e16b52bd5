"""The `ccore` command: `serve`/`ensemble` start servers, `backup`/`restore` copy their data; the
rest are client shell commands.

This module sits outside the four packages so that it may dispatch to both the server and the
client, which never import each other.
"""

from __future__ import annotations

import sys

SERVER_COMMANDS = {"serve", "ensemble", "backup", "restore"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SERVER_COMMANDS:
        from ccore.server.cli import main as server_main

        return server_main(args)
    from ccore.client.shell import main as client_main

    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
