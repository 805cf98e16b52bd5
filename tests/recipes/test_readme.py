"""README's Python examples run as written (against our server, its address swapped in)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.compat.servers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
# The lease example holds its lease until killed: it is run with an argument and stopped once
# it reports ownership.
LONG_RUNNING = "trio.sleep_forever()  # work as the owner"


# FastAPI is not a dependency: its block runs against this stand-in for the two things it
# uses (the app's lifespan and a route), and the driver below calls them as a server would:
# startup, six concurrent requests on three invoices, shutdown.
FASTAPI_STAND_IN = """
import asyncio, sys, types
fastapi = types.ModuleType("fastapi")
class HTTPException(Exception):
    def __init__(self, status_code, detail=None):
        super().__init__(status_code, detail)
class FastAPI:
    def __init__(self, lifespan=None):
        self.lifespan, self.state, self.routes = lifespan, types.SimpleNamespace(), {}
    def post(self, path):
        def route(fn):
            self.routes[path] = fn
            return fn
        return route
fastapi.FastAPI, fastapi.HTTPException = FastAPI, HTTPException
sys.modules["fastapi"] = fastapi
"""
FASTAPI_DRIVER = """
async def _serve():
    async with app.lifespan(app):
        handler = app.routes["/invoices/{number}/pay"]
        results = await asyncio.gather(*(handler(str(n % 3)) for n in range(6)))
        print(sorted(r["paid"] for r in results), len({r["fencing_token"] for r in results}))
asyncio.run(_serve())
"""


def _run(code: str, hosts: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = code.replace("127.0.0.1:2181", hosts)
    return subprocess.run(
        [sys.executable, "-c", code, "NodeA"], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, check=False
    )


def test_readme_has_the_recipes_it_promises():
    recipes = [b for b in BLOCKS if "ccore.recipes" in b]
    names = {
        name
        for b in recipes
        for name in ("Lock", "Election", "ServiceRegistry", "Lease")
        if f"import {name}" in b or f", {name}" in b
    }
    assert names == {"Lock", "Election", "ServiceRegistry", "Lease"}


@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if "from ccore" in b and "KazooClient" not in b])
def test_readme_python_block_runs(index, hosts):
    code = BLOCKS[index]
    if LONG_RUNNING in code:
        code = code.replace(LONG_RUNNING, "trio.sleep(0)")
    fastapi = "from fastapi import" in code
    if fastapi:
        code = FASTAPI_STAND_IN + code + FASTAPI_DRIVER
    done = _run(code, hosts)
    assert done.returncode == 0, done.stderr[-2000:]
    if fastapi:
        assert done.stdout.strip() == "['0', '0', '1', '1', '2', '2'] 6"  # every payment, each its own grant
