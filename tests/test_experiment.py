"Edge cases of mosaiclab.experiment's paired-over-seeds helpers: the one rule every chapter's reading uses to call a difference separable."
import math
import pytest
from mosaiclab.experiment import paired_diff, paired_verdict

# differences 1, 2, 3 by seed: mean 2, sample std 1 (by hand: deviations -1, 0, 1, sum of squares 2, over n - 1 = 2)
A = {0: 11.0, 1: 22.0, 2: 33.0}
B = {0: 10.0, 1: 20.0, 2: 30.0}

def test_mean_std_count_of_the_paired_differences():
    assert paired_diff(A, B) == pytest.approx((2.0, 1.0, 3))
    assert paired_diff(B, A) == pytest.approx((-2.0, 1.0, 3))

def test_pairs_by_seed_not_by_position():
    shuffled = {2: 30.0, 0: 10.0, 1: 20.0}
    v = paired_verdict(A, shuffled)
    assert v["seeds"] == [0, 1, 2] and v["diffs"] == pytest.approx([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="paired by seed"):
        paired_diff([11.0, 22.0], [10.0, 20.0])

def test_the_threshold_is_strict_and_scales_with_k_and_floor():
    # mean 2, std 1: separable at k < 2, not at k = 2 (2 > 2 is false), nor when the floor raises the spread
    assert paired_verdict(A, B, k=1.9)["verdict"] == "separable"
    assert paired_verdict(A, B, k=2.0)["verdict"] == "within the seed spread"
    assert paired_verdict(A, B, k=1.0, floor=2.5)["verdict"] == "within the seed spread"
    assert paired_verdict(A, B, k=1.0, floor=2.5)["spread"] == 2.5
    assert paired_verdict(A, B, k=1.0, floor=0.5)["spread"] == pytest.approx(1.0)   # a floor below the spread changes nothing

def test_the_sign_of_the_claim():
    assert paired_verdict(A, B, sign=+1, k=1)["verdict"] == "separable"
    assert paired_verdict(A, B, sign=-1, k=1)["verdict"] == "within the seed spread"   # a above b is not a below b
    assert paired_verdict(B, A, sign=-1, k=1)["verdict"] == "separable"
    assert paired_verdict(B, A, sign=0, k=1)["verdict"] == "separable"                 # either way
    assert paired_verdict(A, B, sign=-1)["wins"] == 0 and paired_verdict(B, A, sign=0)["wins"] == 3
    with pytest.raises(ValueError, match="sign must be"):
        paired_verdict(A, B, sign=2)

def test_wins_count_strictly_and_ties_win_nothing():
    v = paired_verdict({0: 1.0, 1: 1.0, 2: 2.0, 3: 0.0}, {0: 0.0, 1: 1.0, 2: 1.0, 3: 1.0})   # differences 1, 0, 1, -1
    assert (v["wins"], v["n"]) == (2, 4)
    assert paired_verdict({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, sign=0)["wins"] == 0        # mean 0: no side to win on

def test_no_matched_seeds_is_a_clear_error():
    with pytest.raises(ValueError, match="no seed in both arms"):
        paired_diff({0: 1.0, 1: 2.0}, {2: 1.0})
    with pytest.raises(ValueError, match="no seed in both arms"):
        paired_verdict({}, {})

def test_unmatched_seeds_are_left_out_or_refused():
    a = {0: 11.0, 1: 22.0, 2: 33.0, 7: 100.0}
    b = {0: 10.0, 1: 20.0, 2: 30.0, 9: -5.0}
    assert paired_diff(a, b) == pytest.approx((2.0, 1.0, 3))
    with pytest.raises(ValueError, match=r"same seeds: only in a \[7\], only in b \[9\]"):
        paired_verdict(a, b, strict=True)

def test_one_seed_is_too_few_however_large_the_gap():
    v = paired_verdict({0: 100.0}, {0: 0.0})
    assert (v["mean"], v["std"], v["n"], v["wins"], v["verdict"]) == (100.0, 0.0, 1, 1, "too few seeds")
    assert paired_diff({0: 100.0}, {0: 0.0}) == (100.0, 0.0, 1)

def test_zero_spread():
    # the same gap in every seed: any positive mean beats a zero spread, unless a floor says how small a spread to trust
    same_gap = paired_verdict({0: 1.5, 1: 2.5}, {0: 1.0, 1: 2.0})
    assert (same_gap["std"], same_gap["verdict"]) == (0.0, "separable")
    assert paired_verdict({0: 1.5, 1: 2.5}, {0: 1.0, 1: 2.0}, floor=0.3)["verdict"] == "within the seed spread"
    # no gap at all: 0 > 0 is false, in either direction
    for sign in (-1, 0, 1):
        assert paired_verdict({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, sign=sign)["verdict"] == "within the seed spread"

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, "0.5", True])
def test_a_missing_or_non_finite_value_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"seed 1: arm b has .*not a finite number"):
        paired_verdict({0: 1.0, 1: 2.0}, {0: 1.0, 1: bad})
    with pytest.raises(ValueError, match=r"seed 0: arm a has .*not a finite number"):
        paired_diff({0: bad}, {0: 1.0})

def test_a_nan_in_a_seed_the_other_arm_lacks_is_left_out_with_it():
    # only matched seeds are read; strict=True is the way to insist on every seed
    assert paired_diff({0: 2.0, 5: math.nan}, {0: 1.0}) == (1.0, 0.0, 1)

def test_bad_k_or_floor():
    for kw in ({"k": -1.0}, {"k": math.nan}, {"floor": -0.1}, {"floor": math.inf}):
        with pytest.raises(ValueError, match="must be a finite number >= 0"):
            paired_verdict(A, B, **kw)

def test_any_hashable_key_pairs():
    # e.g. (pretraining seed, fine-tuning seed) pairs pooled over two pretraining runs
    a = {(0, 0): 3.0, (0, 1): 4.0, (1, 0): 5.0}
    b = {(1, 0): 4.0, (0, 0): 2.0, (0, 1): 3.0}
    v = paired_verdict(a, b, sign=0)
    assert v["seeds"] == [(0, 0), (0, 1), (1, 0)] and v["diffs"] == [1.0, 1.0, 1.0] and v["verdict"] == "separable"
    # keys that cannot be sorted keep the first arm's order
    assert paired_verdict({"x": 2.0, 1: 3.0}, {1: 1.0, "x": 1.0})["seeds"] == ["x", 1]

def test_numpy_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    assert paired_diff({0: np.float32(2.0), 1: np.int64(3)}, {0: 1.0, 1: 1.0}) == pytest.approx((1.5, 0.5 ** 0.5, 2))

def test_fmt_mean_std_prints_a_verdict_and_refuses_a_seed_dict():
    from mosaiclab.experiment import fmt_mean_std
    assert fmt_mean_std(paired_verdict(A, B), digits=1) == "2.0 ± 1.0 (3 seeds)"
    assert fmt_mean_std(paired_verdict({0: 100.0}, {0: 0.0}), digits=0) == "100 (1 seed)"
    with pytest.raises(TypeError, match=r"list\(d.values\(\)\)"):
        fmt_mean_std(A)   # would otherwise average the seeds 0, 1, 2
