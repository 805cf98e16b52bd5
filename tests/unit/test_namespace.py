"""One import package: a user's own `client.py`, `server.py`, `recipes.py` or `znodes.py`
beside their script must not shadow any part of consistent-core."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from ccore import connect, NoNodeError, NoServerError, blocking
from ccore.recipes import Lock, Election, ServiceRegistry, Lease
import ccore.server.zkserver, ccore.znodes.tree, ccore.client.shell
import client, server, recipes, znodes
assert all(m.MINE for m in (client, server, recipes, znodes)), "the user's own modules"
assert issubclass(NoServerError, Exception) and callable(connect) and Lock and Lease
print("ok")
"""


def test_users_modules_named_like_our_folders_change_nothing(tmp_path):
    for name in ("client", "server", "recipes", "znodes"):
        # What a user's file of that name might hold: here, a marker and a broken import.
        (tmp_path / f"{name}.py").write_text("MINE = True\nConnect = Client = Lock = None\n")
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_the_command_runs_from_any_directory(tmp_path):
    (tmp_path / "client.py").write_text("raise SystemExit('the user client.py was imported')\n")
    done = subprocess.run(
        [sys.executable, "-m", "ccore", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout
