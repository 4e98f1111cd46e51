"""Hostile-input tests: fuzzed and oversized requests against the edge and the gRPC service."""
