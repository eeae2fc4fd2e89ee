"""One outcome vocabulary: every decision counts as exactly one outcome of the requests metric, and the
metric's series are the outcomes, created at 0 from the start."""

from __future__ import annotations

from webhook.core import outcomes
from webhook.observe import metrics


def test_every_decision_counts_as_one_outcome() -> None:
    assert set(outcomes.OUTCOME_OF) == set(outcomes.DECISIONS)
    assert set(outcomes.OUTCOME_OF.values()) <= set(outcomes.OUTCOMES)
    assert len(set(outcomes.DECISIONS)) == len(outcomes.DECISIONS)


def test_the_requests_metric_has_one_series_per_outcome() -> None:
    assert set(metrics.OUTCOMES) == set(outcomes.OUTCOMES)
    # Only errors and unreadable bodies have no decision: every other outcome is some decision's.
    assert set(outcomes.OUTCOMES) - set(outcomes.OUTCOME_OF.values()) == {
        outcomes.OUTCOME_BAD_REQUEST,
        outcomes.OUTCOME_ERROR,
    }
