"""The policy file's `review_learning` section: what a review's verdict may teach routing about the
customer (see routing_service.domain.learning). Without the section, or without a part of it, that verdict
teaches nothing.

    review_learning:
      wrong_category:              # verdict wrong-category, or confirmed on a category_mismatch finding
        expires_after_days: 30     # the customer's calls stated as that category go to the right team
      should_not_have_escalated:   # verdict should-not-have-escalated
        complexity_ceiling: intermediate   # keywords and history raise their calls no higher
        expires_after_days: 14
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing_service.domain.models import (
    Complexity,
    LearnComplexityCeiling,
    LearnPreferredTeam,
    ReviewLearningPolicy,
)

__all__ = ["LearnCeilingDoc", "LearnTeamDoc", "ReviewLearningDoc"]

_DAYS = Annotated[float, Field(gt=0, le=3650)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LearnTeamDoc(_Doc):
    """A wrong-category verdict teaches a preferred team for the category routing used, for this long."""

    expires_after_days: _DAYS

    def to_domain(self) -> LearnPreferredTeam:
        return LearnPreferredTeam(expires_after=timedelta(days=self.expires_after_days))


class LearnCeilingDoc(_Doc):
    """A should-not-have-escalated verdict teaches a complexity ceiling, for this long."""

    complexity_ceiling: Literal["basic", "intermediate", "advanced", "critical"]
    expires_after_days: _DAYS

    def to_domain(self) -> LearnComplexityCeiling:
        return LearnComplexityCeiling(
            ceiling=Complexity.parse(self.complexity_ceiling),
            expires_after=timedelta(days=self.expires_after_days),
        )


class ReviewLearningDoc(_Doc):
    """The section: one optional part per verdict that can teach."""

    wrong_category: LearnTeamDoc | None = None
    should_not_have_escalated: LearnCeilingDoc | None = None

    def to_domain(self) -> ReviewLearningPolicy:
        return ReviewLearningPolicy(
            wrong_category=self.wrong_category.to_domain() if self.wrong_category is not None else None,
            should_not_have_escalated=(
                self.should_not_have_escalated.to_domain()
                if self.should_not_have_escalated is not None
                else None
            ),
        )
