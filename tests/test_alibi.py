"""ALiBi against a direct formula, for 1..16 heads and lengths beyond the prebuilt table."""
import math
import pytest
import torch
from mosaiclab.alibi import Alibi, alibi_slopes

def direct_slopes(n):
    "Press et al.: m_h = 2^(-8h/n) for n a power of two; else the nearest lower power p, plus the odd-numbered slopes of 2p."
    p = 2 ** int(math.floor(math.log2(n)))
    base = [2 ** (-8 * h / p) for h in range(1, p + 1)]
    extra = [2 ** (-8 * h / (2 * p)) for h in range(1, 2 * p + 1, 2)][: n - p]
    return base + extra

@pytest.mark.parametrize("n", range(1, 17))
def test_slopes_match_direct_formula(n):
    assert alibi_slopes(n) == pytest.approx(direct_slopes(n), rel=1e-12)

@pytest.mark.parametrize("n", [1, 3, 6, 12, 16])
def test_bias_matches_direct_formula_beyond_prebuilt(n):
    a = Alibi(n, size=16)
    T = 40  # longer than the prebuilt 16 positions: the table regrows
    b = a.bias(T)
    assert b.shape == (1, n, T, T) and a.size == T
    i = torch.arange(T)[:, None]; j = torch.arange(T)[None, :]
    want = torch.stack([-m * (i - j).abs().float() for m in direct_slopes(n)])[None]
    torch.testing.assert_close(b, want)
    assert torch.equal(b, b.transpose(-1, -2))                     # symmetric: a bidirectional encoder
    assert torch.equal(a.bias(7), want[:, :, :7, :7])             # slicing after growth

def test_alibi_buffers_follow_the_module():
    a = Alibi(4).to(torch.float64)
    assert a.slopes.dtype == torch.float64 and a.table.dtype == torch.float64
    assert not a.state_dict()
