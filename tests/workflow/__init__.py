"""Temporal workflow and activity tests (workflow_fakes, routing_standin, history_recorder)."""
