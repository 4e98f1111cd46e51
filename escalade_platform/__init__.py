"""What the three Escalade services share and nothing of their own: logging, tracing, the latency buckets
of their metrics, heap freezing, masking of phone numbers for logs and traces, the settings base, the
Python code generated from `proto/`, and the one migration history of the database they share
(`migrations`). It imports none of `routing_service`, `webhook_edge` or `workflows`."""
