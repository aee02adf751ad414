"""The promotion decision (:func:`item2vec.registry.decide`): a pure function, tested without MLflow."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from item2vec.registry import Champion, Decision, decide


@dataclass
class Gate:
    gating_metric: str = "mrr@20"
    min_improvement: float = 0.0


def test_no_champion_promotes_whatever_the_score():
    for score in (0.0, 0.3, float("nan")):
        assert decide(score, None, Gate()) == Decision(True, "no champion yet")


def test_a_higher_score_beats_the_champion_and_the_reason_names_both():
    d = decide(0.31, Champion(4, 0.25), Gate())
    assert d.promote is True and not d.regated
    assert d.reason == "mrr@20 0.3100 beats the champion (v4) 0.2500 on the same test data"


def test_a_tie_stays_with_the_champion():
    d = decide(0.25, Champion(4, 0.25), Gate())
    assert d.promote is False and d.reason == "mrr@20 0.2500 does not beat the champion (v4) 0.2500"


def test_a_lower_score_is_not_promoted():
    assert decide(0.2, Champion(1, 0.25), Gate(gating_metric="hr@10")).promote is False


@pytest.mark.parametrize(("challenger", "promote"), [(0.26, False), (0.29, False), (0.31, True)])
def test_min_improvement_is_a_margin_the_challenger_must_exceed(challenger, promote):
    d = decide(challenger, Champion(2, 0.25), Gate(min_improvement=0.05))
    assert d.promote is promote
    if not promote:
        assert "by more than" in d.reason


def test_a_nan_score_never_wins_against_a_champion():
    assert decide(float("nan"), Champion(3, 0.1), Gate()).promote is False
    assert decide(0.9, Champion(3, float("nan")), Gate()).promote is False


def test_the_regate_decides_against_the_new_champion_and_says_it_moved():
    # the run saw v2 (0.20) at its start; another run moved the alias to v5 (0.40) before this one promoted
    first = decide(0.30, Champion(2, 0.20), Gate())
    again = decide(0.30, Champion(5, 0.40), Gate(), regated=True, regated_from=2)
    assert first.promote is True and again.promote is False and again.regated
    assert again.reason.endswith("(re-gated at promotion: the champion had moved from v2 to v5)")
    assert "does not beat the champion (v5)" in again.reason


def test_the_regate_when_the_champion_appeared_or_vanished():
    appeared = decide(0.30, Champion(1, 0.10), Gate(), regated=True, regated_from=None)
    assert appeared.promote and appeared.reason.endswith("moved from none to v1)")
    vanished = decide(0.30, None, Gate(), regated=True, regated_from=3)
    assert vanished.promote and vanished.reason == "no champion yet (re-gated at promotion: the champion had moved from v3 to none)"
