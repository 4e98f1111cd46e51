"""Load a routing policy (and customer/agent import files) into domain objects, or say precisely why not.

    policy = load_policy("examples/techcorp.yaml")        # -> routing_service.domain.models.Policy
    parse_policy(text, source="inline")                  # same, from a string

Every failure is a `PolicyError` naming the file, the field (dotted path, list items as `[i]`) and the
reason; all problems found are reported at once. The YAML is read with a *safe* loader that follows the
YAML 1.2 core schema for scalars: `+15550100100` and `17:00` stay strings (YAML 1.1 would make them
numbers), only `true`/`false` are booleans, and duplicate keys are errors. Files are capped at 1 MiB and
alias expansion is bounded, so neither a "billion laughs" document nor deep nesting can exhaust the process.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from routing_service.domain.decision import CONFIRM_MESSAGE_FIELDS, TEMPLATE_FIELDS, placeholders
from routing_service.domain.handoff import PACKET_FIELDS
from routing_service.domain.models import (
    BusinessHours,
    Complexity,
    ComplexityPolicy,
    FairLoadPolicy,
    FallbackPolicy,
    KeywordRule,
    Policy,
    QueuePolicy,
    ReloadGuard,
    Rule,
    SummaryMessage,
    Team,
    TransferTemplate,
    UncertaintyAction,
    UncertaintyPolicy,
    WideningPolicy,
)
from routing_service.domain.promises import PromisePolicy
from routing_service.domain.review_notifications import ReviewNotifications
from routing_service.policy.errors import PolicyError, Problem
from routing_service.policy.handoff import check_handoff
from routing_service.policy.review_notifications import check_review_teams
from routing_service.policy.schema import (
    AgentRecord,
    AgentsFileDoc,
    CustomerRecord,
    FairLoadDoc,
    PolicyDoc,
    TransferDoc,
    UncertaintyDoc,
)
from routing_service.policy.widening import check_widening

__all__ = [
    "MAX_FILE_BYTES",
    "file_stamp",
    "load_agents",
    "load_customers",
    "load_policy",
    "parse_agents",
    "parse_customers",
    "parse_policy",
    "read_yaml",
]

MAX_FILE_BYTES = 1 << 20
"""Policy and data files larger than this (1 MiB) are refused."""
MAX_DATA_BYTES = 64 << 20
"""Customer/agent import files may be larger (64 MiB)."""
_MAX_NODES = 200_000
_MAX_DEPTH = 64

ModelT = TypeVar("ModelT", bound=BaseModel)


# ---------------------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_scalar(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {str(key)[:60]!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in {_INT, _FLOAT, _BOOL, _TIMESTAMP}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^-?(?:0|[1-9][0-9]{0,17})$"), list("-0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17}(?:[eE][-+]?[0-9]{1,3})?|[eE][-+]?[0-9]{1,3})$"),
    list("-0123456789"),
)


def read_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text safely (see the module docstring); PolicyError on any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise PolicyError.single(source, "", f"too large ({len(text)} characters; the limit is 1 MiB)")
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise PolicyError.single(source, "", _yaml_reason(exc)) from None
    except yaml.YAMLError as exc:
        raise PolicyError.single(source, "", f"not valid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise PolicyError.single(source, "", "nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise PolicyError.single(
            source, "", f"not valid YAML: {type(exc).__name__}: {str(exc)[:120]}"
        ) from None
    _check_size(data, source)
    return data


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = exc.problem or exc.context or "syntax error"
    return f"not valid YAML{where}: {what}"


def _check_size(data: Any, source: str) -> None:
    """Refuse documents whose alias-expanded size or depth is absurd (bombs, self-references)."""
    budget = _MAX_NODES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise PolicyError.single(
                source, "", f"too many values (over {_MAX_NODES} after expanding aliases)"
            )
        if depth > _MAX_DEPTH:
            raise PolicyError.single(source, "", f"nested too deeply (over {_MAX_DEPTH} levels)")
        if isinstance(item, dict):
            for key, value in item.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)


def _read_text(path: str | Path, limit: int) -> tuple[str, str]:
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise PolicyError.single(source, "", f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise PolicyError.single(source, "", f"cannot read: {exc}") from None
    if len(raw) > limit:
        raise PolicyError.single(source, "", f"too large (the limit is {limit // (1 << 20)} MiB)")
    try:
        return raw.decode("utf-8-sig"), source
    except UnicodeDecodeError as exc:
        raise PolicyError.single(source, "", f"not UTF-8 text (byte {exc.start})") from None


# ---------------------------------------------------------------------------------------------------------
# Validation errors -> problems
# ---------------------------------------------------------------------------------------------------------
_PREFIXES = ("Value error, ", "Assertion failed, ")
_MESSAGES = {
    "missing": "required field missing",
    "extra_forbidden": "unknown field",
    "model_type": "should be a mapping of fields (key: value lines)",
    "model_attributes_type": "should be a mapping of fields (key: value lines)",
    "dict_type": "should be a mapping (key: value lines)",
    "list_type": "should be a list (- item lines or [a, b])",
}


def _field(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (key)"
        else:
            text += f".{part}" if text else str(part)
    return text


def _problems(exc: ValidationError, *, prefix: Iterable[int | str] = ()) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False, include_input=False):
        reason = _MESSAGES.get(error["type"], error["msg"])
        for lead in _PREFIXES:
            if reason.startswith(lead):
                reason = reason[len(lead) :]
        if error["type"] == "literal_error" and tuple(error["loc"]) == ("version",):
            reason = "unsupported version (this Escalade reads version 1)"
        problems.append(Problem(_field([*prefix, *error["loc"]]), reason))
    return problems


def _validate(model: type[ModelT], data: Any, source: str, *, prefix: Iterable[int | str] = ()) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, _problems(exc, prefix=prefix)) from None
    except RecursionError:
        raise PolicyError.single(source, _field(prefix), "nested too deeply") from None


# ---------------------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------------------
def file_stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of the file at `path`, None when it cannot be read: what a process
    following a policy file compares to tell that it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; PolicyError (file, field, reason) on any problem."""
    text, source = _read_text(path, MAX_FILE_BYTES)
    return parse_policy(text, source=source)


def parse_policy(text: str, *, source: str) -> Policy:
    """Validate policy YAML text; `source` names it in errors."""
    try:
        data = read_yaml(text, source=source)
        if not isinstance(data, dict):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise PolicyError.single(
                source, "", f"a policy must be a mapping of sections (teams, rules, ...); got {kind}"
            )
        doc = _validate(PolicyDoc, data, source)
        problems = _cross_check(doc)
        if problems:
            raise PolicyError(source, problems)
        return _build(doc, source)
    except PolicyError:
        raise
    except Exception as exc:  # a safety net: nothing but PolicyError ever leaves the loader
        raise PolicyError.single(source, "", f"cannot be read ({type(exc).__name__})") from None


def _cross_check(doc: PolicyDoc) -> list[Problem]:
    problems: list[Problem] = []
    tiers = set(doc.tiers) if doc.tiers is not None else None
    categories = set(doc.categories) | {doc.default_category}

    def check_tier(field: str, tier: str) -> None:
        if tiers is not None and tier not in tiers:
            problems.append(Problem(field, f"unknown tier {tier!r}; tiers are {', '.join(sorted(tiers))}"))

    check_tier("default_tier", doc.default_tier)
    for tier in doc.complexity.tier_floors:
        check_tier(f"complexity.tier_floors.{tier}", tier)
    for tier in doc.queue.priority.tiers:
        check_tier(f"queue.priority.tiers.{tier}", tier)

    seen_rules: dict[str, int] = {}
    catch_all: str | None = None
    for index, rule in enumerate(doc.rules):
        where = f"rules[{index}]"
        if rule.id in seen_rules:
            problems.append(
                Problem(f"{where}.id", f"duplicate rule id {rule.id!r} (also rules[{seen_rules[rule.id]}])")
            )
        seen_rules.setdefault(rule.id, index)
        if rule.team not in doc.teams:
            problems.append(
                Problem(
                    f"{where}.team",
                    f"unknown team {rule.team!r} in rule {rule.id!r}; "
                    f"teams are {', '.join(sorted(doc.teams))}",
                )
            )
        if catch_all is not None:
            problems.append(
                Problem(where, f"rule {rule.id!r} is never reached: rule {catch_all!r} matches every call")
            )
        when = rule.when
        if when is None or all(
            value is None for value in (when.tiers, when.categories, when.complexities, when.min_complexity)
        ):
            catch_all = catch_all or rule.id
            continue
        for tier in when.tiers or ():
            check_tier(f"{where}.when.tiers", tier)
        for category in when.categories or ():
            if category not in categories:
                problems.append(
                    Problem(
                        f"{where}.when.categories",
                        f"unknown category {category!r}; categories are {', '.join(sorted(categories))}",
                    )
                )
        minimum = when.min_complexity
        if (
            when.complexities is not None
            and minimum is not None
            and not any(level >= minimum for level in when.complexities)
        ):
            problems.append(Problem(f"{where}.when", "complexities and min_complexity can never both hold"))

    for team_id, team in doc.teams.items():
        problems += _check_transfer(f"teams.{team_id}.transfer", team.transfer)
        if team.specialist_transfer is not None:
            problems += _check_transfer(f"teams.{team_id}.specialist_transfer", team.specialist_transfer)
    if doc.specialist_transfer is not None:
        problems += _check_transfer("specialist_transfer", doc.specialist_transfer)
    problems += _check_transfer("queue.transfer", doc.queue.transfer)
    problems += _check_transfer("fallback.transfer", doc.fallback.transfer)
    problems += check_review_teams(doc.review_notifications, set(doc.teams))
    problems += check_handoff(doc.handoff)
    problems += _check_template("queue.wait_message", doc.queue.wait_message)
    problems += _check_template("queue.closed_message", doc.queue.closed_message)
    problems += _check_template("queue.missed_message", doc.queue.missed_message)
    problems += _check_template(
        "queue.callback_first_message", doc.queue.callback_first_message, known=CALLBACK_FIRST_MESSAGE_FIELDS
    )
    for level, words in doc.complexity.keywords.items():
        for position, word in enumerate(words):
            if not word.split():
                problems.append(Problem(f"complexity.keywords.{level.label}[{position}]", "keyword is blank"))
    if doc.uncertainty is not None:
        problems += _check_uncertainty(doc.uncertainty, teams=set(doc.teams), categories=categories)
    if doc.fair_load is not None:
        for team_id in doc.fair_load.teams:
            if team_id not in doc.teams:
                problems.append(
                    Problem(
                        f"fair_load.teams.{team_id}",
                        f"unknown team {team_id!r}; teams are {', '.join(sorted(doc.teams))}",
                    )
                )
    problems += check_widening(doc.widening, teams=set(doc.teams), tiers=tiers, tier_rules=_tier_rules(doc))
    return problems


def _tier_rules(doc: PolicyDoc) -> dict[str, list[tuple[str, list[str]]]]:
    """Per team, each rule that sends it only some tiers: (rule id, those tiers)."""
    by_team: dict[str, list[tuple[str, list[str]]]] = {}
    for rule in doc.rules:
        if rule.when is not None and rule.when.tiers:
            by_team.setdefault(rule.team, []).append((rule.id, list(rule.when.tiers)))
    return by_team


def _check_uncertainty(doc: UncertaintyDoc, *, teams: set[str], categories: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    widens = UncertaintyAction.WIDEN in {doc.action, doc.otherwise if doc.action == "confirm" else None}
    if doc.generalist_team is None:
        if widens:
            problems.append(
                Problem("uncertainty.generalist_team", "required when uncertain decisions widen to it")
            )
    elif doc.generalist_team not in teams:
        problems.append(
            Problem(
                "uncertainty.generalist_team",
                f"unknown team {doc.generalist_team!r}; teams are {', '.join(sorted(teams))}",
            )
        )
    for category, words in doc.category_keywords.items():
        where = f"uncertainty.category_keywords.{category}"
        if category not in categories:
            problems.append(
                Problem(
                    where, f"unknown category {category!r}; categories are {', '.join(sorted(categories))}"
                )
            )
        for position, word in enumerate(words):
            if not word.split():
                problems.append(Problem(f"{where}[{position}]", "keyword is blank"))
    problems += _check_template(
        "uncertainty.confirm_message", doc.confirm_message, known=CONFIRM_MESSAGE_FIELDS
    )
    return problems


def _check_transfer(field: str, transfer: TransferDoc) -> list[Problem]:
    mode_enum = transfer.mode
    problems: list[Problem] = []
    has_summary, has_message = bool(transfer.summary), bool(transfer.handoff_message.strip())
    if mode_enum.uses_summary and not mode_enum.uses_message and not has_summary:
        problems.append(Problem(f"{field}.summary", f"mode {mode_enum.value} needs summary messages"))
    if mode_enum.uses_message and not mode_enum.uses_summary and not has_message:
        problems.append(
            Problem(f"{field}.handoff_message", f"mode {mode_enum.value} needs a handoff_message")
        )
    if mode_enum.uses_message and mode_enum.uses_summary and not (has_message or has_summary):
        problems.append(Problem(field, f"mode {mode_enum.value} needs summary messages or a handoff_message"))
    problems += _check_template(f"{field}.caller_message", transfer.caller_message)
    # The specialist's side may also name the handoff packet's fields; the caller's side may not.
    problems += _check_template(f"{field}.handoff_message", transfer.handoff_message, known=SPECIALIST_FIELDS)
    for index, message in enumerate(transfer.summary):
        problems += _check_template(
            f"{field}.summary[{index}].content", message.content, known=SPECIALIST_FIELDS
        )
    return problems


SPECIALIST_FIELDS = TEMPLATE_FIELDS | PACKET_FIELDS
"""What a transfer's handoff message and summary prompt may name: the usual fields and the packet's."""
CALLBACK_FIRST_MESSAGE_FIELDS = frozenset({"issue_category", "account_name", "team_name", "complexity_level"})
"""What a callback's first message may name: what routing still knows when the customer is called back."""


def _check_template(field: str, template: str, *, known: frozenset[str] = TEMPLATE_FIELDS) -> list[Problem]:
    unknown = sorted({name for name in placeholders(template) if name not in known})
    if not unknown:
        return []
    names = ", ".join("{" + name + "}" for name in unknown)
    return [Problem(field, f"unknown placeholder {names}; known: {', '.join(sorted(known))}")]


def _template(doc: TransferDoc) -> TransferTemplate:
    return TransferTemplate(
        caller_message=doc.caller_message,
        transfer_mode=doc.mode,
        handoff_message=doc.handoff_message,
        summary_messages=tuple(SummaryMessage(role=m.role, content=m.content) for m in doc.summary),
    )


def _build(doc: PolicyDoc, source: str) -> Policy:
    default_specialist = _template(doc.specialist_transfer) if doc.specialist_transfer is not None else None
    teams: dict[str, Team] = {}
    for team_id, team in doc.teams.items():
        hours = team.business_hours
        teams[team_id] = Team(
            team_id=team_id,
            display_name=team.name,
            destination=team.destination.to_domain(),
            transfer=_template(team.transfer),
            specialist_transfer=(
                _template(team.specialist_transfer)
                if team.specialist_transfer is not None
                else default_specialist
            ),
            required_skills=frozenset(team.required_skills),
            business_hours=(
                BusinessHours(
                    timezone=hours.timezone,
                    days=frozenset(hours.days),
                    opens=hours.opens,
                    closes=hours.closes,
                )
                if hours is not None
                else None
            ),
            target_wait=timedelta(minutes=team.target_wait_minutes),
            sticky=team.sticky,
            max_talk=timedelta(minutes=team.max_talk_minutes),
            wrap_up=timedelta(seconds=team.wrap_up_seconds),
            missed_offers_before_away=team.missed_offers_before_away,
        )
    rules = tuple(
        Rule(
            rule_id=rule.id,
            team_id=rule.team,
            tiers=frozenset(rule.when.tiers) if rule.when and rule.when.tiers is not None else None,
            categories=frozenset(rule.when.categories)
            if rule.when and rule.when.categories is not None
            else None,
            complexities=(
                frozenset(rule.when.complexities)
                if rule.when and rule.when.complexities is not None
                else None
            ),
            min_complexity=rule.when.min_complexity if rule.when else None,
        )
        for rule in doc.rules
    )
    assessment = doc.complexity
    complexity = ComplexityPolicy(
        keyword_rules=tuple(
            KeywordRule(level=level, keywords=tuple(dict.fromkeys(" ".join(w.split()) for w in words)))
            for level, words in sorted(assessment.keywords.items(), reverse=True)
        ),
        history_threshold=assessment.history.more_than if assessment.history else None,
        history_level=assessment.history.level if assessment.history else Complexity.CRITICAL,
        tier_floors=MappingProxyType(dict(assessment.tier_floors)),
        default=assessment.default,
    )
    q = doc.queue
    queue = QueuePolicy(
        line=q.line.to_domain(),
        transfer=_template(q.transfer),
        announce_wait_over=timedelta(minutes=q.announce_wait_over_minutes),
        wait_message=q.wait_message,
        closed_message=q.closed_message,
        missed_message=q.missed_message,
        callback_first_message=q.callback_first_message,
        default_handle_time=timedelta(minutes=q.default_handle_time_minutes),
        tier_priority=MappingProxyType(dict(q.priority.tiers)),
        complexity_priority=MappingProxyType(dict(q.priority.complexities)),
        aging_points_per_minute=q.priority.aging_points_per_minute,
        reservation_hold=timedelta(minutes=q.reservation_hold_minutes),
        max_attempts=q.max_attempts,
        retry_spacing=timedelta(minutes=q.retry_spacing_minutes),
        callback_ttl=timedelta(hours=q.callback_ttl_hours),
        promises=PromisePolicy(
            at_risk_fraction=q.promises.at_risk_fraction,
            overtake_tier_gap=q.promises.overtake_tier_gap,
            min_callback_time=timedelta(minutes=q.promises.min_callback_minutes),
        ),
    )
    return Policy(
        name=doc.name,
        default_tier=doc.default_tier,
        default_category=doc.default_category,
        categories=tuple(dict.fromkeys(doc.categories)),
        teams=MappingProxyType(teams),
        rules=rules,
        complexity=complexity,
        queue=queue,
        fallback=FallbackPolicy(
            destination=doc.fallback.destination.to_domain(), transfer=_template(doc.fallback.transfer)
        ),
        assignment_ttl=timedelta(hours=doc.assignment_ttl_hours),
        uncertainty=_uncertainty(doc.uncertainty),
        fair_load=_fair_load(doc.fair_load),
        source=source,
        reload_guard=(
            ReloadGuard(doc.reload_guard.max_moved_share, doc.reload_guard.replay_last)
            if doc.reload_guard is not None
            else None
        ),
        review_notifications=(
            doc.review_notifications.to_domain()
            if doc.review_notifications is not None
            else ReviewNotifications()
        ),
        widening=doc.widening.to_domain() if doc.widening is not None else WideningPolicy(),
        handoff=doc.handoff.to_domain() if doc.handoff is not None else None,
        review_learning=doc.review_learning.to_domain() if doc.review_learning is not None else None,
    )


def _fair_load(doc: FairLoadDoc | None) -> FairLoadPolicy | None:
    if doc is None:
        return None
    return FairLoadPolicy(
        teams=MappingProxyType({team: caps.to_domain() for team, caps in doc.teams.items()}),
        specialists=MappingProxyType({agent: caps.to_domain() for agent, caps in doc.specialists.items()}),
    )


def _uncertainty(doc: UncertaintyDoc | None) -> UncertaintyPolicy | None:
    if doc is None:
        return None
    return UncertaintyPolicy(
        threshold=doc.threshold,
        action=doc.action,
        otherwise=doc.otherwise,
        generalist_team=doc.generalist_team or "",
        category_keywords=MappingProxyType(
            {
                category: tuple(dict.fromkeys(" ".join(w.split()) for w in words))
                for category, words in doc.category_keywords.items()
            }
        ),
        confirm_message=doc.confirm_message,
    )


# ---------------------------------------------------------------------------------------------------------
# Import files
# ---------------------------------------------------------------------------------------------------------
def load_agents(path: str | Path) -> list[AgentRecord]:
    """Agents from a YAML file (`agents:` list) or, when the name ends in .csv, a CSV file."""
    text, source = _read_text(path, MAX_DATA_BYTES)
    return parse_agents(text, source=source, csv_format=str(path).lower().endswith(".csv"))


def parse_agents(text: str, *, source: str, csv_format: bool = False) -> list[AgentRecord]:
    """Validate agents YAML, or CSV with the header
    `id,name,number,teams,skills,max_complexity,capacity,status` (teams/skills separated by ';')."""
    try:
        if csv_format:
            rows = _csv_rows(AgentRecord, text, source)
            _unique(source, [(r.id, f"line {line}.id") for line, r in rows], "agent id")
            return [record for _, record in rows]
        data = read_yaml(text, source=source)
        if isinstance(data, list):
            data = {"agents": data}
        if not isinstance(data, dict):
            raise PolicyError.single(source, "", "expected a mapping with an `agents:` list")
        records = _validate(AgentsFileDoc, data, source).agents
        _unique(source, [(r.id, f"agents[{i}].id") for i, r in enumerate(records)], "agent id")
        return records
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError.single(source, "", f"cannot be read ({type(exc).__name__})") from None


def load_customers(path: str | Path) -> list[CustomerRecord]:
    """Customers from a CSV file with header `number,tier,account,previous_escalations`."""
    text, source = _read_text(path, MAX_DATA_BYTES)
    return parse_customers(text, source=source)


def parse_customers(text: str, *, source: str) -> list[CustomerRecord]:
    """Validate customer CSV text (numbers normalised like callers; later duplicates are errors)."""
    try:
        rows = _csv_rows(CustomerRecord, text, source)
        _unique(source, [(r.number, f"line {line}.number") for line, r in rows], "customer number")
        return [record for _, record in rows]
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError.single(source, "", f"cannot be read ({type(exc).__name__})") from None


def _csv_rows(model: type[ModelT], text: str, source: str) -> list[tuple[int, ModelT]]:
    """(line number, record) for every non-blank row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    if reader.fieldnames is None:
        raise PolicyError.single(source, "", "empty file: a header line is needed")
    header = [name.strip().lower() for name in reader.fieldnames]
    allowed = set(model.model_fields)
    unknown = [name for name in header if name not in allowed]
    if unknown:
        raise PolicyError.single(
            source,
            "line 1",
            f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(model.model_fields)}",
        )
    reader.fieldnames = header
    records: list[tuple[int, ModelT]] = []
    problems: list[Problem] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(Problem(f"line {line}", "more values than columns"))
            continue
        values = {key: value for key, value in row.items() if value is not None}
        if not any((value or "").strip() for value in values.values()):
            continue
        try:
            records.append((line, model.model_validate(values)))
        except ValidationError as exc:
            problems += _problems(exc, prefix=[f"line {line}"])
        if len(problems) > 50:
            break
    if problems:
        raise PolicyError(source, problems)
    return records


def _unique(source: str, keyed: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    problems = []
    for key, field in keyed:
        if key in seen:
            problems.append(Problem(field, f"duplicate {what} (first at {seen[key]})"))
        seen.setdefault(key, field)
    if problems:
        raise PolicyError(source, problems)
