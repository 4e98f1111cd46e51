"""The Vapi webhook edge: answers Vapi's server messages through the routing service.

app.py               create_app(settings, ...): routes, lifespan (gRPC channel, outbox, control client),
                     dispatch of each message type to its handler
settings.py          EdgeSettings (ESCALADE_* variables)
auth.py              HMAC / shared-secret checks over the raw body (WebhookAuth: the route's check);
                     sign_hmac for clients
decoding.py          media type, body limits, JSON and Vapi's envelope -> VapiMessage
vapi_models.py       tolerant parsing of Vapi messages (envelope or the seed's flat body)
transfer_request.py  transfer-destination-request: the transfer tool's destination
tool_calls.py        tool-calls: the function tool, acted on through Live Call Control (control.py)
call_events.py       status-update, transfer-update -> RecordCallEvent
end_of_call.py       end-of-call-report -> the review's start in the outbox
escalation.py        one escalation routed: the decision as a Vapi destination, or the fallback line
followups.py         callback/review workflow starts recorded in the outbox (retried in the background)
translate.py         the one Vapi JSON <-> routing proto mapping
fallback.py          the destination used whenever routing cannot answer: the policy file's fallback
                     line (followed while running), ESCALADE_FALLBACK_NUMBER, else a built-in
routing_client.py    the gRPC client (deadline, keepalive, retry on UNAVAILABLE, health)
outbox.py            durable record of callback/review workflow starts
relay.py             the outbox relay: starts the recorded workflows on Temporal
metrics.py           Prometheus metrics and the request-id middleware
control.py           Live Call Control transfers (function-tool path)
openapi.py           the webhook's OpenAPI description
provisioning.py      `escalade vapi provision` bodies and API calls
scenarios.py         the seed's scenarios as Vapi messages (`escalade simulate`)
"""
