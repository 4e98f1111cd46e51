"""The one exception the policy package raises: `PolicyError`, naming file, field and reason.

    PolicyError(problems=[Problem(field="teams.technical.destination.number", reason="...")], source="x.yaml")
    str(err) == "x.yaml: teams.technical.destination.number: ..."   (one line per problem)

Whatever the input (fuzzed YAML, wrong types, huge numbers, unknown keys, bytes that are not UTF-8), loading
a policy or a data file raises this and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PolicyError", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    """Dotted path into the document, e.g. "rules[2].team"; "" for the document as a whole."""
    reason: str

    def line(self, source: str) -> str:
        """`<source>: <field>: <reason>` (the field part left out when there is none)."""
        return f"{source}: {self.field}: {self.reason}" if self.field else f"{source}: {self.reason}"


class PolicyError(Exception):
    """A policy (or data) file that cannot be used; `.problems` lists every problem found."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem("", "invalid"),)
        super().__init__(str(self))

    @property
    def field(self) -> str:
        """The first problem's field."""
        return self.problems[0].field

    @property
    def reason(self) -> str:
        """The first problem's reason."""
        return self.problems[0].reason

    def __str__(self) -> str:
        return "\n".join(problem.line(self.source) for problem in self.problems)

    def __reduce__(self) -> tuple[type[PolicyError], tuple[str, tuple[Problem, ...]]]:
        return (PolicyError, (self.source, self.problems))

    @classmethod
    def single(cls, source: str, field: str, reason: str) -> PolicyError:
        """A PolicyError with one problem."""
        return cls(source, [Problem(field, reason)])
