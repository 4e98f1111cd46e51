"""Policy loading: precise errors (file, field, reason), cross-checks, and nothing but PolicyError ever."""

from __future__ import annotations

import copy
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_service.domain.models import AgentStatus, Complexity, TransferMode
from routing_service.policy import (
    PolicyError,
    load_agents,
    load_customers,
    load_policy,
    parse_agents,
    parse_customers,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]
TECHCORP = (ROOT / "examples" / "techcorp.yaml").read_text()
DOC: dict[str, Any] = yaml.safe_load(TECHCORP)


def mutated(path: str, value: Any) -> str:
    """The TechCorp document with `path` (dotted; ints index lists) set to `value` (or deleted: ...)."""
    doc = copy.deepcopy(DOC)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = doc
    for part in parts[:-1]:
        target = target[part]
    if value is ...:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return yaml.safe_dump(doc, sort_keys=False)


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    return caught.value


def test_techcorp_policy_loads_when_valid() -> None:
    policy = load_policy(ROOT / "examples" / "techcorp.yaml")
    assert policy.name == "techcorp"
    assert policy.source.endswith("techcorp.yaml")
    assert policy.categories == ("technical", "billing", "account", "product")
    assert policy.queue.announce_wait_over == timedelta(minutes=5)
    assert policy.queue.line.number == "+15550100600"
    assert policy.fallback.destination.number == "+15550100900"
    assert policy.complexity.history_threshold == 2
    assert policy.complexity.tier_floors == {"enterprise": Complexity.ADVANCED}
    assert policy.queue.tier_priority["enterprise"] > policy.queue.tier_priority["premium"] > 0
    assert policy.queue.complexity_priority[Complexity.CRITICAL] == max(
        policy.queue.complexity_priority.values()
    )
    assert all(team.business_hours is None for team in policy.teams.values())
    assert policy.teams["product"].specialist_transfer is not None  # the policy-wide default applies


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        ("rules.2.team", "techical", "rules[2].team", "unknown team 'techical'"),
        ("rules.4.id", "billing-and-account", "rules[4].id", "duplicate rule id"),
        (
            "teams.technical.destination.number",
            "+1-555-TECH",
            "teams.technical.destination.number",
            "not E.164",
        ),
        ("teams.technical.destination.number", 15550100200, "teams.technical.destination.number", "quoted"),
        (
            "teams.technical.transfer.mode",
            "warm",
            "teams.technical.transfer.mode",
            "unknown transfer mode 'warm'",
        ),
        (
            "teams.enterprise.transfer.summary",
            [],
            "teams.enterprise.transfer.summary",
            "needs summary messages",
        ),
        (
            "teams.billing.transfer.handoff_message",
            "",
            "teams.billing.transfer.handoff_message",
            "needs a handoff",
        ),
        (
            "teams.billing.transfer.handoff_message",
            "{issue} x",
            "teams.billing.transfer.handoff_message",
            "{issue}",
        ),
        ("rules.2.when.complexities", ["hard"], "rules[2].when.complexities[0]", "unknown complexity 'hard'"),
        ("complexity.history.more_than", "two", "complexity.history.more_than", "valid integer"),
        ("complexity.history.more_than", -1, "complexity.history.more_than", "greater than or equal to 0"),
        ("teams.general.destinaton", {"number": "+15550100500"}, "teams.general.destinaton", "unknown field"),
        ("queue.line", ..., "queue.line", "required field missing"),
        ("queue.max_attempts", 10**30, "queue.max_attempts", "less than or equal to 100"),
        (
            "queue.announce_wait_over_minutes",
            float("inf"),
            "queue.announce_wait_over_minutes",
            "valid number",
        ),
        ("rules.3.when.categories", ["biling"], "rules[3].when.categories", "unknown category 'biling'"),
        ("default_tier", "gold", "default_tier", "unknown tier 'gold'"),
        (
            "teams.product.destination",
            {"number": "+15550100400", "sip_uri": "sip:a@b"},
            "teams.product.destination",
            "exactly one",
        ),
        ("teams.product.destination", {"sip_uri": "http://x"}, "teams.product.destination", "sip:user@host"),
        ("version", 2, "version", "unsupported version"),
        ("rules.5.team", "Bad Id!", "rules[5].team", "not a valid id"),
        ("teams.product.specialist_transfer", 5, "teams.product.specialist_transfer", "should be a mapping"),
        ("rules.0.when.tiers", "enterprise", "rules[0].when.tiers", "should be a list"),
    ],
)
def test_policy_error_names_file_field_and_reason_when_the_document_is_wrong(
    path: str, value: Any, field: str, reason: str
) -> None:
    error = error_of(mutated(path, value))
    fields = [p.field for p in error.problems]
    assert field in fields, str(error)
    problem = error.problems[fields.index(field)]
    assert reason in problem.reason, str(error)
    assert f"policy.yaml: {field}: " in str(error)
    assert error.source == "policy.yaml"


def test_a_rule_after_a_catch_all_is_an_error_when_never_reachable() -> None:
    doc = copy.deepcopy(DOC)
    doc["rules"].append({"id": "late", "when": {"tiers": ["premium"]}, "team": "product"})
    error = error_of(yaml.safe_dump(doc))
    assert error.field == "rules[6]"
    assert "never reached" in error.reason


def test_every_problem_is_reported_when_there_are_several() -> None:
    doc = copy.deepcopy(DOC)
    doc["rules"][0]["team"] = "nope"
    doc["rules"][1]["team"] = "nada"
    error = error_of(yaml.safe_dump(doc))
    assert [p.field for p in error.problems] == ["rules[0].team", "rules[1].team"]
    assert len(str(error).splitlines()) == 2


def test_unquoted_numbers_and_times_stay_text_when_read_by_the_policy_loader() -> None:
    text = TECHCORP.replace('"+15550100200"', "+15550100200").replace(
        "  technical:\n    name: Technical specialists\n",
        "  technical:\n    name: Technical specialists\n"
        "    business_hours: {timezone: America/New_York, days: mon-fri, opens: 09:00, closes: 17:30}\n",
    )
    policy = parse_policy(text, source="t.yaml")
    team = policy.teams["technical"]
    assert team.destination.number == "+15550100200"
    assert team.business_hours is not None
    assert (team.business_hours.opens, team.business_hours.closes) == (time(9), time(17, 30))
    assert team.business_hours.days == frozenset({0, 1, 2, 3, 4})


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        (
            {"timezone": "Mars/Olympus", "days": "mon-fri", "opens": "09:00", "closes": "17:00"},
            "unknown time zone",
        ),
        ({"timezone": "UTC", "days": ["funday"], "opens": "09:00", "closes": "17:00"}, "unknown day"),
        ({"timezone": "UTC", "days": "daily", "opens": "9am", "closes": "17:00"}, "HH:MM"),
        ({"timezone": "UTC", "days": "daily", "opens": "09:00", "closes": "09:00"}, "must differ"),
        ({"timezone": "../../etc/passwd", "days": "daily", "opens": "09:00", "closes": "17:00"}, "time zone"),
    ],
)
def test_business_hours_are_rejected_when_invalid(hours: dict[str, Any], reason: str) -> None:
    error = error_of(mutated("teams.product.business_hours", hours))
    assert error.field.startswith("teams.product.business_hours")
    assert reason in error.reason


def test_overnight_business_hours_load_when_closes_is_before_opens() -> None:
    policy = parse_policy(
        mutated(
            "teams.product.business_hours",
            {"timezone": "Europe/Berlin", "days": ["fri", "sat"], "opens": "22:00", "closes": "06:00"},
        ),
        source="p.yaml",
    )
    hours = policy.teams["product"].business_hours
    assert hours is not None and hours.days == frozenset({4, 5}) and hours.closes < hours.opens


def test_sip_destinations_and_extensions_load_when_well_formed() -> None:
    policy = parse_policy(
        mutated("teams.product.destination", {"number": "+15550100400", "extension": "123#"}), source="p"
    )
    assert policy.teams["product"].destination.extension == "123#"
    policy = parse_policy(
        mutated("teams.product.destination", {"sip_uri": "sip:product@pbx.example.com"}), source="p"
    )
    assert policy.teams["product"].destination.sip_uri == "sip:product@pbx.example.com"


def test_transfer_modes_load_when_named_as_vapi_does() -> None:
    text = mutated("teams.product.transfer", {"mode": "blind-transfer", "caller_message": "One moment."})
    assert (
        parse_policy(text, source="p").teams["product"].transfer.transfer_mode is TransferMode.BLIND_TRANSFER
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "got empty"),
        ("- a\n- b\n", "got a list"),
        ("just text", "got a str"),
        ("a: [1, 2", "not valid YAML at line"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: &a [*a]", "nested too deeply"),
        ("[" * 1200, "nested too deeply"),
        ("a: !!python/object/apply:os.system ['true']", "not valid YAML"),
        ("a: \x00", "not valid YAML"),
    ],
)
def test_unusable_text_gives_a_policy_error_when_parsed(text: str, reason: str) -> None:
    error = error_of(text)
    assert reason in str(error), str(error)


def test_huge_integers_give_a_field_error_when_out_of_range() -> None:
    error = error_of(TECHCORP.replace("max_attempts: 3", "max_attempts: " + "9" * 6000))
    assert error.field == "queue.max_attempts"


def test_alias_bombs_are_refused_when_expansion_is_huge() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = error_of("\n".join(lines))
    assert "too many values" in error.reason


def test_file_errors_name_the_file_when_reading_fails(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (1 << 20) + b"\n")
    with pytest.raises(PolicyError, match="too large"):
        load_policy(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"not UTF-8 text \(byte 9\)") as caught:
        load_policy(latin)
    assert caught.value.source == str(latin)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + TECHCORP.encode())
    assert load_policy(bom).name == "techcorp"


# ---------------------------------------------------------------------------------------------------------
# Fuzzing: whatever the input, PolicyError or a Policy, never anything else
# ---------------------------------------------------------------------------------------------------------
def _parse_or_policy_error(text: str) -> None:
    try:
        parse_policy(text, source="fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_gives_only_policy_errors_when_parsed(text: str) -> None:
    _parse_or_policy_error(text)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(nested)
def test_random_structures_give_only_policy_errors_when_parsed(data: Any) -> None:
    _parse_or_policy_error(yaml.safe_dump(data))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(DOC)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), nested | st.integers(min_value=-(10**40), max_value=10**40))
def test_wrong_types_anywhere_give_only_policy_errors_when_parsed(path: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(DOC)
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    _parse_or_policy_error(yaml.safe_dump(doc))


@settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=200))
def test_random_bytes_give_only_policy_errors_when_loaded(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        load_policy(path)
    except PolicyError as exc:
        assert exc.source == str(path)


# ---------------------------------------------------------------------------------------------------------
# Import files
# ---------------------------------------------------------------------------------------------------------
def test_customer_csv_normalises_numbers_when_formatted(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "number,tier,account,previous_escalations\n"
        "+1 555 010 0101,Premium,Acme,\n"
        "+1234567890,enterprise,TechCorp Enterprise,2\n"
    )
    records = load_customers(path)
    assert [(r.number, r.tier, r.account, r.previous_escalations) for r in records] == [
        ("+15550100101", "premium", "Acme", 0),
        ("+1234567890", "enterprise", "TechCorp Enterprise", 2),
    ]
    assert records[1].to_domain().account_name == "TechCorp Enterprise"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("number,tier\nabc,standard\n", "line 2.number", "not a phone number"),
        (
            "number,tier,previous_escalations\n+15550100101,standard,-1\n",
            "line 2.previous_escalations",
            "greater than or equal to 0",
        ),
        ("number,tier,color\n+15550100101,standard,red\n", "line 1", "unknown column(s) color"),
        ("number,tier\n+15550100101,standard\n+1 555 010 0101,premium\n", "line 3.number", "duplicate"),
        ("number,tier\n+15550100101,\n", "line 2.tier", "must not be empty"),
        ("", "", "header line"),
    ],
)
def test_customer_csv_errors_name_line_and_field_when_a_row_is_bad(
    text: str, field: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_customers(text, source="c.csv")
    assert caught.value.field == field, str(caught.value)
    assert reason in caught.value.reason


def test_agent_csv_splits_teams_and_skills_when_separated_by_semicolons() -> None:
    text = (
        "id,name,number,teams,skills,max_complexity,capacity,status\n"
        "a-1,Ada,+15550100201,technical;enterprise,api;sql,Advanced,2,wrap_up\n"
        "a-2,Bob,,billing,,basic,,\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_agents(text, source="a.csv", csv_format=True)
    assert caught.value.field == "line 3"
    assert "exactly one of number or sip_uri" in caught.value.reason
    agents = parse_agents(text.replace(",,billing", ",+15550100301,billing"), source="a.csv", csv_format=True)
    first = agents[0].to_domain()
    assert first.team_ids == ("technical", "enterprise")
    assert first.skills == frozenset({"api", "sql"})
    assert first.max_complexity is Complexity.ADVANCED
    assert first.status is AgentStatus.WRAP_UP
    assert (agents[1].capacity, agents[1].status) == (1, AgentStatus.AVAILABLE)


@pytest.mark.parametrize(
    ("agent", "field", "reason"),
    [
        ({"capacity": 0}, "agents[0].capacity", "greater than or equal to 1"),
        ({"max_complexity": "expert"}, "agents[0].max_complexity", "unknown complexity 'expert'"),
        ({"number": "+1-555-TECH"}, "agents[0].number", "not E.164"),
        ({"status": "asleep"}, "agents[0].status", "unknown status 'asleep'"),
        ({"teams": []}, "agents[0].teams", "at least 1"),
        ({"shoe_size": 9}, "agents[0].shoe_size", "unknown field"),
    ],
)
def test_agent_yaml_errors_name_the_field_when_a_value_is_bad(
    agent: dict[str, Any], field: str, reason: str
) -> None:
    row = {
        "id": "a-1",
        "name": "Ada",
        "number": "+15550100201",
        "teams": ["technical"],
        "max_complexity": "basic",
    }
    row.update(agent)
    with pytest.raises(PolicyError) as caught:
        parse_agents(yaml.safe_dump({"agents": [row]}), source="agents.yaml")
    assert caught.value.field == field, str(caught.value)
    assert reason in caught.value.reason


def test_agents_file_rejects_duplicate_ids_when_repeated(tmp_path: Path) -> None:
    row = {
        "id": "a-1",
        "name": "Ada",
        "number": "+15550100201",
        "teams": ["technical"],
        "max_complexity": "basic",
    }
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump({"agents": [row, row]}))
    with pytest.raises(PolicyError, match=r"agents\[1\]\.id: duplicate agent id"):
        load_agents(path)


def test_ids_must_be_lower_case_when_given_so_keys_cannot_collide() -> None:
    doc = copy.deepcopy(DOC)
    doc["teams"]["Product"] = doc["teams"]["product"]
    error = error_of(yaml.safe_dump(doc))
    assert error.field == "teams.Product (key)"
    assert "not a valid id" in error.reason


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.booleans())
def test_random_import_files_give_only_policy_errors_when_parsed(text: str, csv_format: bool) -> None:
    for parse in (
        lambda: parse_agents(text, source="fuzz", csv_format=csv_format),
        lambda: parse_customers(text, source="fuzz"),
    ):
        try:
            parse()
        except PolicyError as exc:
            assert exc.source == "fuzz"


def test_policy_error_survives_pickling_when_sent_between_processes() -> None:
    import pickle

    error = error_of(mutated("rules.2.team", "nope"))
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.source, clone.problems, str(clone)) == (error.source, error.problems, str(error))


def test_lifecycle_limits_load_per_team_with_defaults_when_absent() -> None:
    policy = parse_policy(TECHCORP, source="policy.yaml")
    technical, billing = policy.teams["technical"], policy.teams["billing"]
    assert (technical.max_talk, technical.wrap_up, technical.missed_offers_before_away) == (
        timedelta(minutes=90),
        timedelta(seconds=120),
        3,
    )
    assert (billing.max_talk, billing.wrap_up, billing.missed_offers_before_away) == (
        timedelta(minutes=60),
        timedelta(seconds=60),
        3,
    )
    assert "{team_name}" in policy.queue.callback_first_message
    assert "{queue_position}" in policy.queue.missed_message
    bare = copy.deepcopy(DOC)
    del bare["queue"]["callback_first_message"], bare["queue"]["missed_message"]
    defaults = parse_policy(yaml.safe_dump(bare), source="policy.yaml").queue
    assert defaults.callback_first_message.startswith("Hello, this is a call back from {team_name}")
    assert "{queue_position}" in defaults.missed_message


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        ("queue.callback_first_message", "Hi {caller_name}", "queue.callback_first_message", "{caller_name}"),
        (
            "queue.callback_first_message",
            "You were number {queue_position}",
            "queue.callback_first_message",
            "known: account_name, complexity_level, issue_category, team_name",
        ),
        ("queue.missed_message", "Sorry {nobody}", "queue.missed_message", "unknown placeholder {nobody}"),
        ("queue.callback_first_message", "", "queue.callback_first_message", "at least 1 character"),
        ("teams.technical.max_talk_minutes", 0, "teams.technical.max_talk_minutes", "greater than 0"),
        ("teams.technical.wrap_up_seconds", -1, "teams.technical.wrap_up_seconds", "greater than or equal"),
        ("teams.technical.missed_offers_before_away", 0, "teams.technical.missed_offers_before_away", ">= 1"),
    ],
)
def test_lifecycle_fields_give_a_field_error_when_wrong(
    path: str, value: Any, field: str, reason: str
) -> None:
    error = error_of(mutated(path, value))
    problems = {p.field: p.reason for p in error.problems}
    assert field in problems, str(error)
    assert (
        reason in problems[field] or reason.replace(">= ", "greater than or equal to ") in problems[field]
    ), str(error)
