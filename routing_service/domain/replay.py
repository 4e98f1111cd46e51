"""What-if: the team and rule each recorded decision would get under another policy, and what would change.

A stored decision keeps what routing knew when it decided: the tier, the category, the claimed and
effective complexity, and the trace (the customer step names the escalation history, the complexity steps
the keywords found in the call's texts, the team steps the team lines that were closed). `recorded_call`
reads those inputs back; `redecide` runs the routing steps that depend only on the policy (category
normalisation, `assess_complexity`, `match_rule`) on them. No store, no clock, no live availability.

What a replay cannot know, and so keeps as recorded:
- the call's texts are not stored: keywords the recorded assessment found are matched against the
  candidate's keyword lists, but a keyword only the candidate lists cannot be looked for;
- whether a specialist would have been free: a replay names the team and rule, not a specialist, a team
  line or a callback;
- team lines recorded as closed at the time stay closed (the next matching rule is tried, as routing does);
  a team the candidate adds is taken as open.
Decisions that never went through the rules are not replayed: a callback call taken by the specialist held
for it, and fallbacks after an internal failure (`NOT_REPLAYED`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from routing_service.domain.complexity import assess_complexity
from routing_service.domain.matching import match_rule, normalize_category
from routing_service.domain.models import Complexity, Decision, DecisionKind, Policy, Rule, TraceOutcome

__all__ = [
    "NOT_REPLAYED",
    "PolicyDiff",
    "RecordedCall",
    "Replayed",
    "TeamEffect",
    "compare",
    "recorded_call",
    "redecide",
    "team_effects",
]

NOT_REPLAYED = {
    "held-callback": "a callback call taken by the specialist held for it (no rule was tried)",
    "internal-failure": "a fallback after an internal failure (no rule was tried)",
}
"""Why a recorded decision is left out of a replay, by key."""

_HISTORY = re.compile(r"(\d+) previous escalations")
_KEYWORD = re.compile(r"""keyword (['"])(.+?)\1 in """)
_UNKNOWN_CATEGORY = re.compile(r"""^category (['"])(.*)\1 is not one of """)
_KEYWORD_SEPARATOR = " | "


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """What routing knew about a call when it decided, read back from the stored decision."""

    decision: Decision
    tier: str
    default_tier: bool
    """The caller was not a known customer: the tier was the policy's default (a candidate's default
    applies in a replay)."""
    category: str
    """The category the assistant gave when the policy did not know it (so a candidate that knows it can
    use it), else the recorded category."""
    claimed: Complexity | None
    previous_escalations: int
    keywords: tuple[str, ...]
    """Keywords the recorded assessment found in the call's texts."""
    closed_teams: frozenset[str]
    """Teams whose line was closed (and had no specialists on record) when the call was decided."""


def recorded_call(decision: Decision) -> RecordedCall | str:
    """The recorded inputs of a decision, or the `NOT_REPLAYED` key saying why it cannot be replayed."""
    if decision.callback_of_call_id and not decision.rule_id and decision.kind is DecisionKind.TRANSFER_AGENT:
        return "held-callback"
    if decision.kind is DecisionKind.FALLBACK and decision.reason.startswith("internal failure"):
        return "internal-failure"
    default_tier = False
    history = 0
    keywords: list[str] = []
    closed: set[str] = set()
    category = decision.issue_category
    for step in decision.trace:
        if step.stage == "customer":
            default_tier = "default tier" in step.detail
            found = _HISTORY.search(step.detail)
            history = int(found.group(1)) if found else 0
        elif step.stage == "complexity":
            hit = _KEYWORD.search(step.detail)
            if hit and hit.group(2) not in keywords:
                keywords.append(hit.group(2))
        elif step.stage == "team" and step.outcome is TraceOutcome.REJECTED:
            closed.add(step.subject)
        elif step.stage == "category":
            unknown = _UNKNOWN_CATEGORY.match(step.detail)
            if unknown and not unknown.group(2).endswith("..."):
                category = unknown.group(2)
    return RecordedCall(
        decision=decision,
        tier=decision.tier,
        default_tier=default_tier,
        category=category,
        claimed=decision.claimed_complexity,
        previous_escalations=history,
        keywords=tuple(keywords),
        closed_teams=frozenset(closed),
    )


@dataclass(frozen=True, slots=True)
class Replayed:
    """A recorded decision, the team and rule the candidate policy would give it, and the team and rule it
    is compared with: the recorded ones, or those of a baseline policy (`compare(..., baseline=)`)."""

    decision: Decision
    team_id: str
    """"" when no rule of the candidate matches (the call would go to its fallback)."""
    rule_id: str
    tier: str
    category: str
    complexity: Complexity
    from_team_id: str
    from_rule_id: str

    @property
    def moved(self) -> bool:
        """The call would go to a different team (or to or from the fallback)."""
        return self.team_id != self.from_team_id

    @property
    def rule_changed(self) -> bool:
        return self.rule_id != self.from_rule_id


def redecide(policy: Policy, call: RecordedCall) -> Replayed:
    """The team and rule `policy` gives the recorded call (routing's own category, complexity and rule
    steps, on the recorded inputs)."""
    tier = policy.default_tier if call.default_tier else call.tier
    category, _ = normalize_category(policy, call.category)
    complexity = assess_complexity(
        claimed=call.claimed,
        texts={"recorded keywords": _KEYWORD_SEPARATOR.join(call.keywords)},
        tier=tier,
        previous_escalations=call.previous_escalations,
        policy=policy.complexity,
    ).effective
    recorded = call.decision
    rule: Rule | None = None
    while True:
        match = match_rule(policy, tier=tier, category=category, complexity=complexity, after=rule)
        if match.rule is None or match.team is None:
            team_id, rule_id = "", ""
            break
        if match.team.team_id not in call.closed_teams:
            team_id, rule_id = match.team.team_id, match.rule.rule_id
            break
        rule = match.rule
    return Replayed(
        recorded, team_id, rule_id, tier, category, complexity, recorded.team_id, recorded.rule_id
    )


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """What a candidate policy would change over a set of recorded decisions."""

    replayed: tuple[Replayed, ...]
    not_replayed: Mapping[str, int]
    """`NOT_REPLAYED` key -> how many decisions were left out for it."""
    first: datetime | None = None
    last: datetime | None = None
    """When the earliest and latest replayed decisions were taken."""
    recorded_rules: Counter[str] = field(default_factory=Counter)
    candidate_rules: Counter[str] = field(default_factory=Counter)
    recorded_teams: Counter[str] = field(default_factory=Counter)
    candidate_teams: Counter[str] = field(default_factory=Counter)
    """Calls per rule and per team ("" is the fallback), as compared with (recorded, or under the baseline
    policy) and under the candidate."""

    @property
    def moved(self) -> tuple[Replayed, ...]:
        return tuple(r for r in self.replayed if r.moved)

    @property
    def moved_share(self) -> float:
        """Moved calls over replayed calls (0 when nothing was replayed)."""
        return len(self.moved) / len(self.replayed) if self.replayed else 0.0

    def moves(self) -> list[tuple[str, str, int]]:
        """(from team, to team, calls) for each route calls would move along, most calls first."""
        counts = Counter((r.from_team_id, r.team_id) for r in self.moved)
        return [(a, b, n) for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def rule_changes(self) -> list[tuple[str, int, int]]:
        """(rule, recorded calls, candidate calls) for each rule whose count changes, biggest change first."""
        names = set(self.recorded_rules) | set(self.candidate_rules)
        rows = [(n, self.recorded_rules[n], self.candidate_rules[n]) for n in names]
        changed = [row for row in rows if row[1] != row[2]]
        return sorted(changed, key=lambda row: (-abs(row[2] - row[1]), row[0]))

    def summary(self) -> dict[str, object]:
        """A flat summary for logs: counts, the moved share and the rules that gain and lose calls."""
        changes = self.rule_changes()
        return {
            "replayed": len(self.replayed),
            "moved": len(self.moved),
            "moved_share": round(self.moved_share, 4),
            "not_replayed": sum(self.not_replayed.values()),
            "rules_gaining": {
                r or "(fallback)": after - before for r, before, after in changes if after > before
            },
            "rules_losing": {
                r or "(fallback)": after - before for r, before, after in changes if after < before
            },
            "moves": {f"{a or '(fallback)'}->{b or '(fallback)'}": n for a, b, n in self.moves()},
        }


def compare(
    candidate: Policy,
    decisions: Iterable[Decision],
    *,
    team_id: str | None = None,
    baseline: Policy | None = None,
) -> PolicyDiff:
    """Replay each recorded decision under `candidate` and compare with what was recorded, or, given a
    `baseline` policy, with what the baseline gives the same call (the effect of changing `baseline` into
    `candidate` alone, whatever policy was in force when the calls were decided). With `team_id`, only the
    calls compared for that team or that the candidate would send to it are kept."""
    replayed: list[Replayed] = []
    left_out: Counter[str] = Counter()
    for decision in decisions:
        call = recorded_call(decision)
        if isinstance(call, str):
            left_out[call] += 1
            continue
        result = redecide(candidate, call)
        if baseline is not None:
            before = redecide(baseline, call)
            result = replace(result, from_team_id=before.team_id, from_rule_id=before.rule_id)
        if team_id is not None and team_id not in (result.from_team_id, result.team_id):
            continue
        replayed.append(result)
    times = [r.decision.decided_at for r in replayed]
    return PolicyDiff(
        replayed=tuple(replayed),
        not_replayed=dict(left_out),
        first=min(times) if times else None,
        last=max(times) if times else None,
        recorded_rules=Counter(r.from_rule_id for r in replayed),
        candidate_rules=Counter(r.rule_id for r in replayed),
        recorded_teams=Counter(r.from_team_id for r in replayed),
        candidate_teams=Counter(r.team_id for r in replayed),
    )


@dataclass(frozen=True, slots=True)
class TeamEffect:
    """A team's recorded calls and the candidate's, with estimates of what the change costs it.

    `extra_handling` = change in calls x `handle_time` (the team's recent mean handle time, or the policy's
    default): an estimate that assumes moved calls take as long as the team's usual ones.
    `recorded_load` and `candidate_load` = calls x `handle_time` over the time `specialists` have in the
    replayed period (None when the head count is unknown): the share of the team's time spent on calls.
    Above 1 the team could not keep up and its callback waits would keep growing. `load_change` is their
    difference.
    `queued_share` and `recorded_wait` describe the period as recorded (the share of the team's calls that
    went to the callback queue, and their mean announced wait): calls moved into a team that queued often
    are likely to wait at least that long."""

    team_id: str
    recorded: int
    candidate: int
    moved_in: int
    moved_out: int
    handle_time: timedelta
    extra_handling: timedelta
    specialists: int | None
    recorded_load: float | None
    candidate_load: float | None
    load_change: float | None
    queued_share: float
    recorded_wait: timedelta | None

    @property
    def change(self) -> int:
        return self.candidate - self.recorded


def team_effects(
    diff: PolicyDiff,
    *,
    default_handle_time: timedelta,
    handle_times: Mapping[str, timedelta] | None = None,
    specialists: Mapping[str, int] | None = None,
    period: timedelta | None = None,
) -> list[TeamEffect]:
    """Each team that had or would get calls (the fallback excluded), most affected first. `period`
    defaults to the span of the replayed decisions (at least an hour)."""
    handle_times = handle_times or {}
    specialists = specialists or {}
    if period is None:
        span = diff.last - diff.first if diff.first is not None and diff.last is not None else timedelta(0)
        period = max(span, timedelta(hours=1))
    moved_in: Counter[str] = Counter(r.team_id for r in diff.moved)
    moved_out: Counter[str] = Counter(r.from_team_id for r in diff.moved)
    queued: Counter[str] = Counter()
    waits: dict[str, list[timedelta]] = {}
    for r in diff.replayed:
        if r.decision.kind is DecisionKind.CALLBACK:
            queued[r.decision.team_id] += 1
            if r.decision.estimated_wait is not None:
                waits.setdefault(r.decision.team_id, []).append(r.decision.estimated_wait)
    effects = []
    for team in sorted((set(diff.recorded_teams) | set(diff.candidate_teams)) - {""}):
        before, after = diff.recorded_teams[team], diff.candidate_teams[team]
        handle = handle_times.get(team) or default_handle_time
        extra = handle * (after - before)
        heads = specialists.get(team)
        capacity = period * heads if heads else None
        team_waits = waits.get(team, [])
        effects.append(
            TeamEffect(
                team_id=team,
                recorded=before,
                candidate=after,
                moved_in=moved_in[team],
                moved_out=moved_out[team],
                handle_time=handle,
                extra_handling=extra,
                specialists=heads,
                recorded_load=handle * before / capacity if capacity else None,
                candidate_load=handle * after / capacity if capacity else None,
                load_change=extra / capacity if capacity else None,
                queued_share=queued[team] / before if before else 0.0,
                recorded_wait=_mean(team_waits),
            )
        )
    return sorted(effects, key=lambda e: (-abs(e.change), e.team_id))


def _mean(values: Sequence[timedelta]) -> timedelta | None:
    return sum(values, timedelta(0)) / len(values) if values else None
