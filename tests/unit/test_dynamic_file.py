"""zoo.cfg's reconfig keys and the dynamic config file (server/config.py, server/dynamic_file.py):
server lines read from `dynamicConfigFile=`, the version from its name, and a new dynamic file
written so that a restart loads the same membership."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ccore.server.config import ConfigError, load, write_dynamic_config
from ccore.server.dynamic_file import version_from_filename
from ccore.znodes.dynconfig import DynamicConfig

MEMBERS = ["server.1=127.0.0.1:2888:3888", "server.2=127.0.0.1:2889:3889", "server.3=127.0.0.1:2890:3890:observer"]


def static(tmp_path: Path, *lines: str, myid: int = 1) -> Path:
    (tmp_path / "myid").write_text(f"{myid}\n")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("\n".join([f"dataDir={tmp_path}", *lines]) + "\n")
    return cfg


def test_server_lines_from_the_dynamic_file_and_the_version_from_its_name(tmp_path: Path) -> None:
    dynamic = tmp_path / "zoo.cfg.dynamic.100000003"
    dynamic.write_text("\n".join(MEMBERS))
    config = load(static(tmp_path, "tickTime=2000", f"dynamicConfigFile={dynamic}"))
    assert sorted(config.peers) == [1, 2, 3] and config.peers[3].observer
    assert (config.config_version, config.dynamic_config_file) == (0x100000003, dynamic)
    assert config.dynamic_config.render().endswith("version=100000003")
    # No hexadecimal suffix: version 0, as in ZooKeeper.
    plain = tmp_path / "zoo.cfg.dynamic"
    plain.write_text("\n".join(MEMBERS))
    assert load(static(tmp_path, f"dynamicConfigFile={plain}")).config_version == 0


@pytest.mark.parametrize(
    ("static_lines", "dynamic_text", "says"),
    [
        (["server.1=127.0.0.1:2888:3888"], "\n".join(MEMBERS), "must be in the dynamic config file"),
        ([], "\n".join([*MEMBERS, "version=1"]), "holds no version"),
        ([], "\n".join([*MEMBERS, "tickTime=2000"]), "does not belong in a dynamic config file"),
        ([], "\n".join([*MEMBERS, "group.1=1:2:3"]), "hierarchical"),
        ([], "server.1=127.0.0.1:2888", "expected host:quorumPort"),
    ],
)
def test_what_zookeeper_refuses_in_the_two_files(tmp_path: Path, static_lines: list[str], dynamic_text: str, says: str) -> None:
    dynamic = tmp_path / "zoo.cfg.dynamic.1"
    dynamic.write_text(dynamic_text)
    with pytest.raises(ConfigError, match=says):
        load(static(tmp_path, *static_lines, f"dynamicConfigFile={dynamic}"))


def test_a_missing_dynamic_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the dynamic config file"):
        load(static(tmp_path, f"dynamicConfigFile={tmp_path / 'nope'}"))


def test_reconfig_keys(tmp_path: Path) -> None:
    config = load(static(tmp_path, *MEMBERS))
    assert (config.reconfig_enabled, config.standalone_enabled, config.super_digest, config.skip_acl) == (
        False,
        True,
        None,
        False,
    )
    digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    for key in ("DigestAuthenticationProvider.superDigest", "zookeeper.DigestAuthenticationProvider.superDigest"):
        for skip in ("skipACL", "zookeeper.skipACL"):
            config = load(static(tmp_path, "reconfigEnabled=true", "standaloneEnabled=false", f"{key}={digest}", f"{skip}=yes"))
            assert (config.reconfig_enabled, config.standalone_enabled, config.super_digest, config.skip_acl) == (
                True, False, digest, True,
            )  # fmt: skip
    for bad, says in (
        ("skipACL=true", "yes or no"),
        ("reconfigEnabled=yes", "true or false"),
        ("DigestAuthenticationProvider.superDigest=abc", "super:"),
    ):
        with pytest.raises(ConfigError, match=says):
            load(static(tmp_path, bad))


def test_write_splits_a_combined_zoo_cfg_and_a_restart_loads_the_same_membership(tmp_path: Path) -> None:
    cfg = static(tmp_path, "# the ensemble", "tickTime=2000", "clientPort=2181", *MEMBERS, "initLimit=5")
    os.chmod(cfg, 0o600)  # it may hold a superDigest: the rewrite keeps it private
    original = cfg.read_text()
    before = load(cfg)
    config = before.dynamic_config.with_version(0x100000000)
    written = write_dynamic_config(cfg, config, server_id=1)
    assert written == tmp_path / "zoo.cfg.dynamic.100000000"
    assert written.read_text() == config.render_file()
    assert (tmp_path / "zoo.cfg.bak").read_text() == original
    text = cfg.read_text()
    assert (
        text
        == f"dataDir={tmp_path}\n# the ensemble\ntickTime=2000\nclientPort=2181\ninitLimit=5\ndynamicConfigFile={written.resolve()}\n"
    )
    assert oct(os.stat(cfg).st_mode & 0o777) == oct(0o600)
    after = load(cfg)
    assert after.dynamic_config == config and after.peers == before.peers
    assert (after.client_port, after.tick_time_ms, after.init_limit) == (2181, 2000, 5)
    assert not list(tmp_path.glob("*.tmp"))


def test_later_writes_keep_the_backup_and_old_files_and_drop_a_redundant_client_port(tmp_path: Path) -> None:
    cfg = static(tmp_path, "clientPort=2181", *MEMBERS, myid=2)
    first = write_dynamic_config(cfg, load(cfg).dynamic_config.with_version(0x100000000), server_id=2)
    backup = (tmp_path / "zoo.cfg.bak").read_text()
    # A reconfig gives server 2 a client address on its line: clientPort is then redundant,
    # and kept it could contradict a later one.
    grown = DynamicConfig.parse(
        "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;127.0.0.1:2182\n"
        "server.4=127.0.0.1:2891:3891;2184\nversion=100000007"
    )
    second = write_dynamic_config(cfg, grown, server_id=2)
    assert first.exists() and second.name == "zoo.cfg.dynamic.100000007"
    assert (tmp_path / "zoo.cfg.bak").read_text() == backup
    assert "clientPort" not in cfg.read_text()
    restarted = load(cfg)
    assert restarted.dynamic_config == grown
    assert (restarted.client_port_address, restarted.client_port) == ("127.0.0.1", 2182)


def test_write_needs_a_version_and_the_name_gives_it_back() -> None:
    assert version_from_filename("/x/zoo.cfg.dynamic.1a") == 0x1A
    assert version_from_filename("/x/zoo.cfg.dynamic") is None
    assert version_from_filename("/x/zoo.cfg.dynamic.next") is None
    with pytest.raises(ValueError, match="with_version"):
        write_dynamic_config(Path("/nonexistent/zoo.cfg"), DynamicConfig([], None))
