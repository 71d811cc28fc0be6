"""Every attention backend available here matches the eager reference, forward and backward."""
import importlib.util
import pytest
import torch
from mosaiclab.alibi import Alibi
from mosaiclab.attention import BACKENDS, attention, eager_attention, check_backend
from mosaiclab.padding import Unpadded

def random_mask(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0], lengths[-1] = 1, T          # always a length-1 row and a full row
    return (torch.arange(T)[None] < lengths[:, None]).long()

def qkv(meta, H, d, seed, dtype=torch.float32, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(meta.n_tokens, H, d, generator=g, dtype=dtype).requires_grad_(grad) for _ in range(3)]

def real_rows(meta):
    return meta.attention_mask.flatten()[meta.indices]

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("alibi", [False, True])
@pytest.mark.parametrize("unpad", [True, False])
def test_sdpa_matches_eager_forward_backward(seed, alibi, unpad):
    meta = Unpadded.from_mask(random_mask(5, 23, seed), unpad=unpad)
    al = Alibi(6) if alibi else None
    q, k, v = qkv(meta, 6, 16, seed, grad=True)
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    real = real_rows(meta)
    ref = eager_attention(q, k, v, meta, al)
    out = attention(q2, k2, v2, meta, al, backend="sdpa")
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref) * real[:, None, None]           # gradients flow from real tokens only
    (ref * g).sum().backward(); (out * g).sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-5)

@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("alibi", [False, True])
@pytest.mark.parametrize("unpad", [True, False])
def test_flex_matches_eager_forward(seed, alibi, unpad):
    meta = Unpadded.from_mask(random_mask(4, 19, seed), unpad=unpad)
    al = Alibi(4) if alibi else None
    q, k, v = qkv(meta, 4, 16, seed)
    real = real_rows(meta)
    with torch.no_grad():
        torch.testing.assert_close(attention(q, k, v, meta, al, backend="flex")[real], eager_attention(q, k, v, meta, al)[real],
                                   atol=1e-5, rtol=1e-5)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU only: flex backward and flash_attn need CUDA")
@pytest.mark.parametrize("backend", ["flex", "flash_attn"])
def test_gpu_backends_match_eager(backend):
    if backend == "flash_attn" and importlib.util.find_spec("flash_attn") is None: pytest.skip("flash-attn is not installed")
    meta = Unpadded.from_mask(random_mask(6, 64, 0).cuda())
    al = Alibi(8).cuda()
    q, k, v = qkv(meta, 8, 64, 0, dtype=torch.bfloat16)
    q, k, v = (t.cuda().requires_grad_() for t in (q, k, v))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref = eager_attention(q.float(), k.float(), v.float(), meta, al)
    out = attention(q2, k2, v2, meta, al, backend=backend)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    out.float().sum().backward(); ref.sum().backward()
    torch.testing.assert_close(q2.grad.float(), q.grad.float(), atol=5e-2, rtol=5e-2)

def test_unsupported_combinations_raise():
    meta = Unpadded.from_mask(random_mask(2, 5, 0))
    q, k, v = qkv(meta, 2, 8, 0, grad=True)
    with pytest.raises(RuntimeError, match="no backward pass on CPU"): attention(q, k, v, meta, backend="flex")
    with pytest.raises(ValueError, match="choose one of"): attention(q, k, v, meta, backend="triton")
    with torch.no_grad():
        with pytest.raises(ValueError, match="cannot apply attention dropout"):
            attention(q, k, v, meta, dropout_p=0.1, backend="flex")
    if importlib.util.find_spec("flash_attn") is None:
        with pytest.raises(ImportError, match="needs the 'flash_attn' package"): attention(q, k, v, meta, backend="flash_attn")
    else:
        with pytest.raises((RuntimeError, TypeError)): attention(q, k, v, meta, backend="flash_attn")  # CPU / fp32

def test_flash_attn_refuses_fp32_and_padded(monkeypatch):
    # the checks run before any import of the kernel: pretend the package and a GPU exist
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    dev = torch.device("cuda")
    with pytest.raises(TypeError, match="bfloat16"): check_backend("flash_attn", device=dev, dtype=torch.float32)
    with pytest.raises(ValueError, match="unpad=True"): check_backend("flash_attn", device=dev, dtype=torch.bfloat16, unpadded=False)
    assert check_backend("flash_attn", device=dev, dtype=torch.bfloat16).name == "flash_attn"

def test_attention_dropout_is_applied_in_training():
    meta = Unpadded.from_mask(random_mask(2, 9, 0))
    q, k, v = qkv(meta, 2, 8, 0)
    torch.manual_seed(0)
    a = attention(q, k, v, meta, dropout_p=0.5, backend="eager")
    assert not torch.allclose(a, eager_attention(q, k, v, meta))
