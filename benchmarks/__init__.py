"""Benchmarks and soaks: long-running, figure-printing, never part of `make test`."""
