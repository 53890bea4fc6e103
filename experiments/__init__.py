"""Runs: one module per kind of run, the run identity, the flags that define it and its files."""
