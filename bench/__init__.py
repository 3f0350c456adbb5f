"""Benchmarks of rnnbridge (see ``bench/README.md``); each script prints a table and exits."""
