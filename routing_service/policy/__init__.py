"""Routing policy as data: YAML validated by pydantic into the domain's `Policy`.

    from routing_service.policy import load_policy, PolicyError
    policy = load_policy("examples/techcorp.yaml")   # PolicyError names file, field and reason

Also reads the customer (CSV) and agent (YAML/CSV) import files into validated records.
"""

from routing_service.policy.errors import PolicyError, Problem
from routing_service.policy.loader import (
    load_agents,
    load_customers,
    load_policy,
    parse_agents,
    parse_customers,
    parse_policy,
)
from routing_service.policy.schema import AgentRecord, CustomerRecord

__all__ = [
    "AgentRecord",
    "CustomerRecord",
    "PolicyError",
    "Problem",
    "load_agents",
    "load_customers",
    "load_policy",
    "parse_agents",
    "parse_customers",
    "parse_policy",
]
