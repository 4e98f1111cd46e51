"""The Vapi webhook edge: answers Vapi's server messages through the routing service.

app.py             create_app(settings, ...): routes, lifespan (gRPC channel, outbox, control client)
settings.py        EdgeSettings (ESCALADE_* variables)
auth.py            HMAC / shared-secret checks over the raw body; sign_hmac for clients
vapi_models.py     tolerant parsing of Vapi messages (envelope or the seed's flat body)
translate.py       the one Vapi JSON <-> routing proto mapping
fallback.py        the destination used whenever routing cannot answer
routing_client.py  the gRPC client (deadline, keepalive, retry on UNAVAILABLE, health)
outbox.py          durable record of callback/review workflow starts
control.py         Live Call Control transfers (function-tool path)
openapi.py         the webhook's OpenAPI description
provisioning.py    `escalade vapi provision` bodies and API calls
scenarios.py       the seed's scenarios as Vapi messages (`escalade simulate`)
"""
