"""Webhook edge tests and the helpers other layers reuse (edge_support, vapi_api_standin)."""
