"""The Trio-native ZooKeeper client, its blocking facade, and the `ccore` shell commands."""
