"""The overfitting statistics against the papers' examples and small cases worked by hand."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.research.stats import (
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    pbo,
    probabilistic_sharpe,
    sharpe,
)


def test_dsr_matches_the_papers_numerical_example() -> None:
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: an annualised
    # SR of 2.5 over 5 years of daily returns (T = 1250), skewness -3, kurtosis 10, found as the best
    # of N = 100 trials whose annualised Sharpe ratios have variance 0.5. The paper gets
    # SR_0 = 0.1132 (per day) and DSR = 0.9004.
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0) == pytest.approx(
        0.9004, abs=5e-5
    )


def test_expected_max_sharpe_of_two_trials_by_hand() -> None:
    # N = 2: Phi^-1(1 - 1/2) = 0, so SR_0 = sqrt(V) * gamma * Phi^-1(1 - 1/(2e)) = 2 * 0.5772 * 0.90045
    assert expected_max_sharpe(2, 4.0) == pytest.approx(2 * 0.5772157 * 0.90045, rel=1e-5)
    assert expected_max_sharpe(1, 4.0) == 0.0  # one trial: nothing to deflate


def test_psr_by_hand() -> None:
    # SR 0.1 over 101 bars, normal returns (skew 0, kurtosis 3): z = 0.1 * 10 / sqrt(1 + 2/4 * 0.01)
    z = 1.0 / math.sqrt(1.005)
    assert probabilistic_sharpe(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(NormalDist().cdf(z), abs=1e-12)


def test_sharpe_and_moments_by_hand() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])  # mean 0.005, sample std sqrt(0.00050/3)
    assert sharpe(r) == pytest.approx(0.005 / math.sqrt(0.0005 / 3))
    skew, kurt = moments(np.array([1.0, -1.0, 1.0, -1.0]))
    assert (skew, kurt) == (0.0, 1.0)  # a two-point symmetric distribution: kurtosis 1
    assert sharpe(np.zeros(10)) == 0.0


@settings(max_examples=30, deadline=None)
@given(n1=st.integers(2, 50), extra=st.integers(1, 500))
def test_more_trials_deflate_more(n1: int, extra: int) -> None:
    """The same result found among more trials (same spread of Sharpe ratios) is worth less."""
    rng = np.random.default_rng(n1)
    r = rng.normal(0.001, 0.01, 500)
    few = deflated_sharpe(r, np.linspace(-0.05, 0.05, n1))
    many = deflated_sharpe(r, np.linspace(-0.05, 0.05, n1 + extra))
    assert many["sr0"] > few["sr0"]
    assert many["dsr"] < few["dsr"]


def test_best_of_many_noise_strategies_is_not_significant_after_deflation() -> None:
    """Pure-noise strategies (true Sharpe 0): the best of 200 looks significant by its own PSR
    almost always, and the DSR, counting the 200 trials, rejects it about as often as its 5% level."""
    naive, deflated = 0, 0
    for seed in range(40):
        m = np.random.default_rng(seed).normal(0.0, 0.01, (750, 200))
        srs = np.array([sharpe(m[:, j]) for j in range(200)])
        best = m[:, int(np.argmax(srs))]
        skew, kurt = moments(best)
        naive += probabilistic_sharpe(sharpe(best), 0.0, 750, skew, kurt) > 0.95
        deflated += deflated_sharpe(best, srs)["dsr"] > 0.95
    assert naive >= 35
    assert deflated <= 6


def test_pbo_two_trials_by_hand() -> None:
    # Two blocks, two trials. Trial 0 wins the first half and loses the second, trial 1 the
    # reverse: whichever half is in-sample, the chosen trial is the worse one out of sample, its
    # rank 1 of 2 gives w = 1/3 and a negative logit in both splits: PBO = 1.
    up, down = np.array([0.02, 0.01, 0.03, 0.01]), np.array([-0.01, 0.0, -0.02, 0.01])
    m = np.column_stack([np.concatenate([up, down]), np.concatenate([down, up])])
    res = pbo(m, n_blocks=2)
    assert res["n_splits"] == 2
    assert res["pbo"] == 1.0
    assert np.allclose(res["logits"], math.log((1 / 3) / (2 / 3)))
    # Trial 0 better in both halves: always chosen, always best out of sample (w = 2/3): PBO = 0.
    m2 = np.column_stack([np.concatenate([up, up]), np.concatenate([down, down])])
    res2 = pbo(m2, n_blocks=2)
    assert res2["pbo"] == 0.0
    assert np.allclose(res2["logits"], math.log(2.0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12), s=st.sampled_from([2, 4, 6, 8]))
def test_pbo_properties(seed: int, n: int, s: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 0.01, (s * 20, n))
    res = pbo(m, s)
    assert 0.0 <= res["pbo"] <= 1.0
    assert res["n_splits"] == math.comb(s, s // 2)
    # the order of the trials does not matter
    assert pbo(m[:, rng.permutation(n)], s)["pbo"] == pytest.approx(res["pbo"])
    # a trial that beats every other one in every block is never overfit
    dom = np.column_stack([m, np.abs(m).max(axis=1) + 0.05 + 0.001 * rng.random(len(m))])
    assert pbo(dom, s)["pbo"] == 0.0


def test_pbo_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="even"):
        pbo(np.zeros((100, 3)), 3)
    with pytest.raises(ValueError, match="two trials"):
        pbo(np.zeros((100, 1)), 4)
