"""Claims checks with intervals and verdicts (soilbook.claims), on synthetic predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from soilbook.claims import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    VERDICTS,
    Claim,
    Improvement,
    beats_verdict,
    claim_beats,
    claim_not_testable,
    claim_paper_number,
    claim_threshold,
    claims_table,
    data_label,
    improvement,
    paired_bootstrap,
    seed_bootstrap,
    skill,
)
from soilbook.errors import ParameterError
from soilbook.evaluate import bias, r2, rmse

N_BOOT = 400  # enough for stable 95 % percentiles on these clear-cut cases, and fast


def observed(n: int = 300, n_groups: int = 30, seed: int = 0):
    """Observations (n,) with mean 10 and sd 3, and n_groups equal spatial blocks."""
    rng = np.random.default_rng(seed)
    return rng, rng.normal(10.0, 3.0, n), np.repeat(np.arange(n_groups), n // n_groups)


def improvement_at(
    low: float, high: float, estimate: float | None = None, level: float = 0.95
) -> Improvement:
    mid = (low + high) / 2 if estimate is None else estimate
    return Improvement("rmse", mid, low, high, level, 1.0, 1.0 + mid, 1000, 1000, "groups", 20, 1)


# --------------------------------------------------------------------------------------------
# verdicts of "A beats B"
# --------------------------------------------------------------------------------------------


def test_verdict_values_are_exactly_the_four() -> None:
    assert VERDICTS == ("reproduced", "not reproduced", "inconclusive", "not testable here")


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2", "ccc", "rpiq"])
def test_clearly_better_model_is_reproduced_with_a_positive_interval(metric: str) -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 0.8, y.size)
    b = y + rng.normal(0, 2.5, y.size)
    c = claim_beats(
        "A beats B", "A is better", y, a, b, name_a="Net", name_b="RF", metric=metric,
        groups=g, n_boot=N_BOOT, units="g/kg",
    )  # fmt: skip
    assert c.verdict == REPRODUCED
    assert c.interval is not None and 0 < c.interval[0] < c.interval[1]
    assert "Net" in c.measured and "RF" in c.measured and "30 groups" in c.measured
    # swapping the roles turns the same evidence into "not reproduced" (interval on B's side)
    swapped = claim_beats(
        "B beats A", "", y, b, a, name_a="RF", name_b="Net", metric=metric, groups=g,
        n_boot=N_BOOT,
    )  # fmt: skip
    assert swapped.verdict == NOT_REPRODUCED
    assert swapped.interval is not None and swapped.interval[1] < 0
    assert "Net is better" in swapped.reason


def test_equal_models_are_inconclusive() -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 1.0, y.size)
    c = claim_beats("A beats B", "", y, a, b, name_a="A", name_b="B", groups=g, n_boot=N_BOOT)
    assert c.verdict == INCONCLUSIVE
    assert c.interval is not None and c.interval[0] < 0 < c.interval[1]
    assert "contains 0" in c.reason
    same = claim_beats("A beats A", "", y, a, a, name_a="A", name_b="A", n_boot=N_BOOT)
    assert same.interval == (0.0, 0.0) and same.verdict == INCONCLUSIVE


def test_better_model_without_skill_is_never_reproduced() -> None:
    rng, y, g = observed()
    a = np.full(y.size, y.mean()) + rng.normal(0, 0.5, y.size)  # ≈ the mean: R² < 0
    b = y + rng.normal(0, 6.0, y.size)  # far worse still
    assert skill(y, a) <= 0
    result = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT)
    assert result.low > 0  # A *is* clearly better …
    c = claim_beats("A beats B", "", y, a, b, name_a="A", name_b="B", groups=g, n_boot=N_BOOT)
    assert c.verdict == NOT_REPRODUCED  # … but has no skill
    assert "no skill" in c.reason
    # a stated, stricter threshold also applies to a model with some skill
    good = y + rng.normal(0, 2.0, y.size)  # R² ≈ 0.55
    strict = claim_beats(
        "A beats B", "", y, good, b, name_a="A", name_b="B", skill_threshold=0.7, n_boot=N_BOOT
    )
    assert strict.verdict == NOT_REPRODUCED and "no skill" in strict.reason


@pytest.mark.parametrize("flags", [(False, True), (True, False), (False, False)])
def test_non_converged_network_makes_the_verdict_inconclusive(flags: tuple[bool, bool]) -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 0.8, y.size)
    b = y + rng.normal(0, 2.5, y.size)
    c = claim_beats(
        "A beats B", "", y, a, b, name_a="A", name_b="B", groups=g, n_boot=N_BOOT,
        converged_a=flags[0], converged_b=flags[1],
    )  # fmt: skip
    assert c.verdict == INCONCLUSIVE
    assert "did not converge" in c.reason
    failed = [n for n, ok in zip("AB", flags, strict=True) if not ok]
    assert c.reason.startswith(" and ".join(failed) + " did not converge")  # names the network
    assert c.interval is not None and c.interval[0] > 0  # the interval is still reported


def test_beats_verdict_rules_in_order() -> None:
    above, below, across = (
        improvement_at(0.1, 0.5),
        improvement_at(-0.5, -0.1),
        improvement_at(-0.2, 0.3),
    )
    assert beats_verdict(above, skill_a=0.5)[0] == REPRODUCED
    assert beats_verdict(below, skill_a=0.5)[0] == NOT_REPRODUCED
    assert beats_verdict(across, skill_a=0.5)[0] == INCONCLUSIVE
    assert beats_verdict(improvement_at(0.0, 0.4), skill_a=0.5)[0] == INCONCLUSIVE  # bound 0
    assert beats_verdict(above, skill_a=0.0)[0] == NOT_REPRODUCED  # R² = 0 is no skill
    assert beats_verdict(above, skill_a=float("nan"))[0] == NOT_REPRODUCED
    # non-convergence comes first: a failed training explains the missing skill
    assert beats_verdict(below, skill_a=-1.0, converged=False)[0] == INCONCLUSIVE


# --------------------------------------------------------------------------------------------
# orientation and intervals
# --------------------------------------------------------------------------------------------


def test_orientation_positive_means_a_is_better_for_every_metric() -> None:
    rng, y, _ = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 2.0, y.size)
    assert improvement("rmse", y, a, b) == pytest.approx(rmse(y, b) - rmse(y, a))
    assert improvement("r2", y, a, b) == pytest.approx(r2(y, a) - r2(y, b))
    for metric in ("rmse", "mae", "r2", "ccc", "rpiq"):
        assert improvement(metric, y, a, b) > 0
        assert improvement(metric, y, b, a) == pytest.approx(-improvement(metric, y, a, b))
    # bias: closer to 0 is better, whatever its sign
    small, large = y + 0.1, y - 1.0
    assert improvement("bias", y, small, large) == pytest.approx(
        abs(bias(y, large)) - abs(bias(y, small))
    )
    assert improvement("bias", y, small, large) > 0
    # the bootstrap keeps the orientation: both intervals lie above 0
    for metric in ("rmse", "r2"):
        res = paired_bootstrap(y, a, b, metric=metric, n_boot=N_BOOT)
        assert res.low <= res.estimate <= res.high and res.low > 0 and res.side == "A"


def test_group_bootstrap_is_wider_than_sample_bootstrap_on_clustered_errors() -> None:
    rng, y, g = observed(n=600, n_groups=30)
    # each block has its own error offset for each model: errors are spatially correlated
    a = y + rng.normal(0, 1.5, 30)[g] + rng.normal(0, 0.5, y.size)
    b = y + rng.normal(0, 1.5, 30)[g] + rng.normal(0, 0.5, y.size)
    by_sample = paired_bootstrap(y, a, b, n_boot=N_BOOT)
    by_group = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT)
    assert by_group.estimate == pytest.approx(by_sample.estimate)
    assert (by_sample.resampled, by_sample.n_units) == ("samples", 600)
    assert (by_group.resampled, by_group.n_units) == ("groups", 30)
    width = lambda r: r.high - r.low  # noqa: E731
    assert width(by_group) > 2 * width(by_sample)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 1.2, y.size)
    first = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT, seed=3)
    assert paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT, seed=3) == first
    assert paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT, seed=4).low != first.low
    seeds_a = np.stack([a, a + 0.2, a - 0.3])
    one = claim_beats("c", "p", y, seeds_a, b, name_a="A", name_b="B", groups=g, n_boot=N_BOOT)
    two = claim_beats("c", "p", y, seeds_a, b, name_a="A", name_b="B", groups=g, n_boot=N_BOOT)
    assert one == two


def test_level_changes_the_width() -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 1.2, y.size)
    wide = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT, level=0.95)
    narrow = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT, level=0.5)
    assert narrow.low > wide.low and narrow.high < wide.high


# --------------------------------------------------------------------------------------------
# repeats over seeds
# --------------------------------------------------------------------------------------------


def test_more_seed_noise_widens_the_interval() -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 1.5, y.size)
    shifts = np.array([-1.0, 0.2, 0.9, -0.4])  # a per-seed offset (training randomness)

    def run(tau: float) -> Improvement:
        return seed_bootstrap(y, a + tau * shifts[:, None], b, groups=g, n_boot=N_BOOT)

    quiet, noisy, noisier = run(0.0), run(0.5), run(1.0)
    width = lambda r: r.high - r.low  # noqa: E731
    assert width(quiet) < width(noisy) < width(noisier)
    assert noisier.n_seeds == 4
    # identical runs add nothing: exactly the single-run paired bootstrap
    single = paired_bootstrap(y, a, b, groups=g, n_boot=N_BOOT)
    assert quiet.interval == pytest.approx(single.interval)
    assert quiet.estimate == pytest.approx(single.estimate)


def test_seed_bootstrap_pairs_runs_by_seed_and_averages_them() -> None:
    rng, y, g = observed()
    runs_a = np.stack([y + rng.normal(0, 1.0, y.size) for _ in range(3)])
    runs_b = np.stack([y + rng.normal(0, 2.0, y.size) for _ in range(3)])
    res = seed_bootstrap(y, runs_a, runs_b, groups=g, n_boot=N_BOOT)
    per_seed = [improvement("rmse", y, pa, pb) for pa, pb in zip(runs_a, runs_b, strict=True)]
    assert res.estimate == pytest.approx(np.mean(per_seed))
    assert improvement("rmse", y, runs_a, runs_b) == pytest.approx(np.mean(per_seed))
    assert res.metric_a == pytest.approx(np.mean([rmse(y, p) for p in runs_a]))
    assert res.low > 0 and res.n_seeds == 3
    assert "3 seeds" in res.describe()


# --------------------------------------------------------------------------------------------
# threshold and paper-number claims
# --------------------------------------------------------------------------------------------


def test_generalisation_needs_the_threshold_and_the_best_baseline() -> None:
    rng, y, g = observed()
    rf = y + rng.normal(0, 2.5, y.size)  # R² ≈ 0.3
    weak = y + rng.normal(0, 2.9, y.size)  # R² ≈ 0.05: above 0, below RF
    kw = {"name": "Net", "threshold": 0.5, "groups": g, "n_boot": N_BOOT}
    # chapter 2's case: held-out R² just above 0 and below RF is not "generalises"
    c = claim_threshold("generalises", "R² ≥ 0.5", y, weak, baselines={"RF": rf}, **kw)
    assert c.verdict == NOT_REPRODUCED
    assert "wrong side of 0.5" in c.reason and "worse than RF" in c.reason
    good = y + rng.normal(0, 1.0, y.size)  # R² ≈ 0.9
    plsr = y + rng.normal(0, 2.0, y.size)
    ok = claim_threshold("generalises", "", y, good, baselines={"RF": rf, "PLSR": plsr}, **kw)
    assert ok.verdict == REPRODUCED
    assert "PLSR" in ok.measured  # the best baseline is the one compared with
    assert ok.interval is not None and ok.interval[0] > 0
    # above the threshold but tied with the baseline: undecided without a margin
    twin = y + rng.normal(0, 1.0, y.size)
    tied = claim_threshold("generalises", "", y, good, baselines={"twin": twin}, **kw)
    assert tied.verdict == INCONCLUSIVE
    lenient = claim_threshold(
        "generalises", "", y, good, baselines={"twin": twin}, margin=0.1, **kw
    )
    assert lenient.verdict == REPRODUCED
    stalled = claim_threshold(
        "generalises", "", y, good, baselines={"RF": rf}, converged=False, **kw
    )
    assert stalled.verdict == INCONCLUSIVE


def test_threshold_on_an_error_metric_and_without_baselines() -> None:
    rng, y, g = observed()
    pred = y + rng.normal(0, 1.0, y.size)  # RMSE ≈ 1
    kw = {"name": "Net", "metric": "rmse", "baselines": {}, "groups": g, "n_boot": N_BOOT}
    assert claim_threshold("c", "", y, pred, threshold=2.0, **kw).verdict == REPRODUCED
    low = claim_threshold("c", "", y, pred, threshold=0.5, **kw)
    assert low.verdict == NOT_REPRODUCED
    assert low.interval is not None and low.interval[1] < 0  # margin over the threshold


def test_paper_numbers_are_not_testable_on_other_data() -> None:
    rng, y, _ = observed()
    pred = y + rng.normal(0, 1.0, y.size)
    paper = {"rmse": 3.6, "mae": 1.7, "r2": 0.68}
    c = claim_paper_number(
        "validation accuracy", "RMSE ≈ 3.6 g/kg", y, pred, paper_values=paper,
        same_data=False, name="Net", units="g/kg",
    )  # fmt: skip
    assert c.verdict == NOT_TESTABLE and c.interval is None
    assert "RMSE" in c.measured and "3.6 g/kg" in c.measured
    kw = {"same_data": True, "name": "Net", "n_boot": N_BOOT}
    close = claim_paper_number("acc", "", y, pred, paper_values={"rmse": 1.0}, **kw)
    assert close.verdict == REPRODUCED and close.interval is not None
    assert close.interval[0] < 0 < close.interval[1]
    beaten = claim_paper_number("acc", "", y, pred, paper_values={"rmse": 0.5, "r2": 0.5}, **kw)
    assert beaten.verdict == NOT_REPRODUCED and "RMSE" in beaten.reason


# --------------------------------------------------------------------------------------------
# the record
# --------------------------------------------------------------------------------------------


def test_record_round_trips_through_json() -> None:
    rng, y, g = observed()
    a = y + rng.normal(0, 1.0, y.size)
    b = y + rng.normal(0, 2.0, y.size)
    records = [
        claim_beats(
            "A beats B", "A is better", y, a, b, name_a="A", name_b="B", groups=g,
            n_boot=N_BOOT, data=data_label("LimeSoDa"),
        ),
        claim_not_testable("coupling", "salinity–crop coupling", reason="built into the simulator"),
    ]  # fmt: skip
    for rec in records:
        d = rec.to_dict()
        assert list(d) == ["claim", "paper", "measured", "interval", "verdict", "data", "reason"]
        text = json.dumps(d, allow_nan=False)
        assert Claim.from_dict(json.loads(text)) == rec
    assert records[0].to_dict()["data"] == "real: LimeSoDa"
    assert records[1].to_dict()["interval"] is None
    with pytest.raises(ParameterError, match="lacks field"):
        Claim.from_dict({"claim": "x"})


def test_claims_table_keeps_every_field_and_full_text() -> None:
    long = "a measured sentence " * 20
    records = [
        Claim("c1", "p1", long, (-0.25, 1.5), INCONCLUSIVE, "simulated", "r1"),
        Claim("c2", "p2", "m2", None, NOT_TESTABLE, "real: OSSL", "r2"),
    ]
    table = claims_table(records)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [
        "claim",
        "paper",
        "measured",
        "interval",
        "verdict",
        "data",
        "reason",
    ]
    assert table.loc[0, "measured"] == long
    assert table.loc[0, "interval"] == "[-0.25, 1.50]" and table.loc[1, "interval"] == "—"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"verdict": "partly"}, "not one of"),
        ({"data": "real"}, "Allowed: 'simulated'"),
        ({"data": "measured"}, "Allowed: 'simulated'"),
        ({"interval": (1.0, 0.0)}, "low ≤ high"),
        ({"interval": (float("nan"), 1.0)}, "finite"),
    ],
)
def test_record_rejects_bad_fields(kwargs: dict, match: str) -> None:
    fields = {"claim": "c", "paper": "p", "measured": "m", "interval": None}
    fields |= {"verdict": REPRODUCED, "data": "simulated", "reason": "r"} | kwargs
    with pytest.raises(ParameterError, match=match):
        Claim(**fields)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def _inputs():
    rng, y, g = observed(n=60, n_groups=6)
    return y, y + rng.normal(0, 1, y.size), y + rng.normal(0, 2, y.size), g


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda y, a, b, g: (y, a[:-1], b, {}), "shape"),
        (lambda y, a, b, g: (y, a, b, {"groups": g[:-1]}), "groups has 59 labels"),
        (lambda y, a, b, g: (y, a, b, {"groups": np.zeros(y.size)}), "at least 2"),
        (lambda y, a, b, g: (y, np.where(g == 0, np.nan, a), b, {}), "NaN"),
        (lambda y, a, b, g: (np.where(g == 0, np.nan, y), a, b, {}), "NaN"),
        (lambda y, a, b, g: (y, a, b, {"metric": "rsquared"}), "unknown metric"),
        (lambda y, a, b, g: (y, a, b, {"level": 0.0}), r"outside \(0, 1\)"),
        (lambda y, a, b, g: (y, a, b, {"level": 1.0}), r"outside \(0, 1\)"),
        (lambda y, a, b, g: (y, a, b, {"level": 95}), r"outside \(0, 1\)"),
        (lambda y, a, b, g: (y, a, b, {"n_boot": 10}), "n_boot"),
        (lambda y, a, b, g: (y, np.stack([a, a, a]), b, {}), "seed_bootstrap"),
    ],
)
def test_paired_bootstrap_errors(change, match: str) -> None:
    y, a, b, kw = change(*_inputs())
    with pytest.raises(ParameterError, match=match):
        paired_bootstrap(y, a, b, **kw)


def test_seed_errors() -> None:
    y, a, b, _ = _inputs()
    with pytest.raises(ParameterError, match="at least 3"):
        seed_bootstrap(y, np.stack([a, a]), b)
    with pytest.raises(ParameterError, match="at least 3"):
        claim_beats("c", "p", y, np.stack([a, a]), b, name_a="A", name_b="B")
    with pytest.raises(ParameterError, match="both are single runs"):
        seed_bootstrap(y, a, b)
    with pytest.raises(ParameterError, match="paired by seed"):
        seed_bootstrap(y, np.stack([a] * 3), np.stack([b] * 4))
    with pytest.raises(ParameterError, match="at least 3"):
        claim_threshold("c", "p", y, np.stack([a, a]), name="A", threshold=0.5, baselines={"RF": b})


def test_claim_builders_check_their_own_arguments() -> None:
    y, a, b, _ = _inputs()
    with pytest.raises(ParameterError, match="Allowed: 'simulated'"):
        claim_beats("c", "p", y, a, b, name_a="A", name_b="B", data="LimeSoDa")
    with pytest.raises(ParameterError, match="unknown metric"):
        claim_paper_number("c", "p", y, a, paper_values={"RMSE": 3.6}, same_data=False, name="A")
    with pytest.raises(ParameterError, match="margin"):
        claim_threshold("c", "p", y, a, name="A", threshold=0.5, baselines={}, margin=-0.1)
    with pytest.raises(ParameterError, match="skill_threshold"):
        claim_beats("c", "p", y, a, b, name_a="A", name_b="B", skill_threshold=1.0, n_boot=100)
    with pytest.raises(ParameterError, match="needs a name"):
        data_label("  ")


def test_group_resamples_are_made_of_whole_groups() -> None:
    from soilbook.claims import _unit_sampler

    sizes = np.array([1, 5, 2, 9, 3])
    codes = np.repeat(np.arange(sizes.size), sizes)[np.random.default_rng(1).permutation(20)]
    draw, unit, n_units = _unit_sampler(codes, codes.size)
    assert (unit, n_units) == ("groups", 5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        rows = draw(rng)
        taken = np.bincount(codes[rows], minlength=sizes.size)
        assert np.all(taken % sizes == 0)  # every group enters whole, maybe several times
        assert (taken // sizes).sum() == sizes.size  # as many draws as groups
        per_row = np.bincount(rows, minlength=codes.size)
        for k in range(sizes.size):  # all rows of one group are drawn equally often
            assert np.unique(per_row[codes == k]).size == 1
