"""What `pip install` of our wheel gives a user: the product only (`ccore.*`), working on its
own, with no checkout around it: `ccore serve`, kazoo against it, and a recipe."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.compat.servers import REPO_ROOT, free_port, wait_for_imok

CLIENT_SCRIPT = """
import sys, trio
from kazoo.client import KazooClient
from ccore import connect, NoNodeError
from ccore.recipes import Lock

hosts = sys.argv[1]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)
zk.create("/from-kazoo", b"hello", makepath=True)
assert zk.get("/from-kazoo")[0] == b"hello"
zk.stop()

async def main():
    async with connect(hosts) as client:
        async with Lock(client, "/wheel-lock", b"me") as token:
            assert token > 0
        try:
            await client.get("/missing")
        except NoNodeError:
            pass
        print("ok", (await client.get("/from-kazoo"))[0].decode())

trio.run(main)
"""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env(), check=False)
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)], cwd=out, timeout=600)
    return out


def test_the_wheel_holds_the_product_only(dist):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ccore", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for package in ("znodes", "client", "recipes", "server", "server/zab", "server/storage"):
        assert f"ccore/{package}/__init__.py" in names
    assert "ccore/py.typed" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ccore = ccore.cli:main" in entry_points
    (sdist,) = dist.glob("*.tar.gz")
    assert any(n.endswith("/pyproject.toml") for n in tarfile.open(sdist).getnames())


def test_installed_wheel_serves_kazoo_and_our_recipes(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python, ccore = venv / "bin" / "python", venv / "bin" / "ccore"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel), "kazoo"], cwd=tmp_path)
    port, log = free_port(), tmp_path / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(ccore), "serve", "--client-port", str(port), "--data-dir", str(tmp_path / "data"), "--log-level", "WARNING"],
            cwd=tmp_path, env=_clean_env(), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_imok(port, server, log)
        (tmp_path / "app.py").write_text(CLIENT_SCRIPT)
        out = _run([str(python), "app.py", f"127.0.0.1:{port}"], cwd=tmp_path, timeout=120)
        assert out.strip() == "ok hello"
        # Nothing of the checkout was used: the installed package lives in the venv.
        where = _run([str(python), "-c", "import ccore.server, ccore.znodes; print(ccore.server.__file__)"], cwd=tmp_path)
        assert str(venv) in where and str(REPO_ROOT) not in where
    finally:
        server.kill()
        server.wait()
