"""The super user (zoo.cfg `DigestAuthenticationProvider.superDigest`), through kazoo, on Apache
ZooKeeper and on ours alike: a session that authenticates with the matching `digest` passes
every ACL check; the same password wrong, or another session, does not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from tests.compat.helpers import close_kazoo, new_kazoo, start_server
from tests.compat.servers import ServerHandle

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # digest of super:test (kazoo's TestReconfig)


@pytest.fixture(scope="module", params=["apache", "ccore"])
def super_server(request, tmp_path_factory) -> Iterator[ServerHandle]:
    base: Path = tmp_path_factory.mktemp(f"super-{request.param}")
    if request.param == "apache":
        # An unknown zoo.cfg key becomes the system property zookeeper.<key>, which is where
        # DigestAuthenticationProvider reads the super digest from.
        handle = start_server("apache", base, extra_config={"DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    else:
        cfg = base / "zoo.cfg"
        cfg.write_text(f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}\n")
        handle = start_server("ccore", base, extra_args=["--config", str(cfg)])
    try:
        yield handle
    finally:
        handle.kill()


def test_the_super_user_passes_every_acl(super_server: ServerHandle) -> None:
    hosts = super_server.connect_string
    path = f"/secret-{uuid.uuid4().hex[:8]}"
    owner = new_kazoo(hosts, auth_data=[("digest", "alice:pw")])
    anyone = new_kazoo(hosts)
    wrong = new_kazoo(hosts, auth_data=[("digest", "super:nope")])
    root = new_kazoo(hosts, auth_data=[("digest", "super:test")])
    try:
        owner.create(path, b"hidden", acl=[make_digest_acl("alice", "pw", all=True)])
        owner.create(path + "/child", b"", acl=[make_digest_acl("alice", "pw", all=True)])
        for client in (anyone, wrong):
            with pytest.raises(NoAuthError):
                client.get(path)
            with pytest.raises(NoAuthError):
                client.set(path, b"x")
        assert root.get(path)[0] == b"hidden"
        assert root.get_children(path) == ["child"]
        root.set(path, b"seen by super")
        root.set_acls(path + "/child", [make_digest_acl("bob", "pw", all=True)])
        root.delete(path + "/child")
        assert owner.get(path)[0] == b"seen by super"
        root.delete(path)
        assert anyone.exists(path) is None
    finally:
        for client in (owner, anyone, wrong, root):
            close_kazoo(client)
