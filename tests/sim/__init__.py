"""Deterministic simulation of Zab ensembles: `python -m tests.sim --help`."""
