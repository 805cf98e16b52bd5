"""The Trio server: client port, sessions, request pipeline, storage, replication, `ccore serve`."""
