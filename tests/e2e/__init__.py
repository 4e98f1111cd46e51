"""End-to-end tests: the escalade console script and its subprocesses."""
