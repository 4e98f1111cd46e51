"""Escalade's test suite. Each folder is a package, so helper modules are imported by their full name
(`tests.edge.edge_support`) by pytest, by each other and by mypy alike."""
