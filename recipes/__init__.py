"""Coordination recipes on the Trio client: locks, elections, barriers, leases, registries."""
