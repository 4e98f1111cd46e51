"""Routing service tests: the store and the gRPC server (grpc_helpers, store_builders)."""
