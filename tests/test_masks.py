"""Causal and prefix-LM attention: every backend against eager (forward and backward), the defining properties of
each mask on a whole model (no information from the future), padded == unpadded, and clear errors."""
import importlib.util
import pytest
import torch
from mosaiclab.alibi import Alibi
from mosaiclab.attention import attention, eager_attention, check_backend, prefix_lm_mask
from mosaiclab.model import MosaicBertConfig, MosaicBertModel, MosaicBertForMaskedLM, save_pretrained, from_pretrained
from mosaiclab.padding import Unpadded

SMALL = MosaicBertConfig.lab().replace(vocab_size=150, d_model=48, n_layers=2, n_heads=6, d_ff=40, hidden_dropout=0.0)

def ragged(B, T, seed):
    "Right-padded mask with a length-1 row and a full row, and random prefix lengths in [0, length]."
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g); lengths[0], lengths[-1] = 1, T
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    prefix = (torch.rand(B, generator=g) * (lengths + 1)).long().clamp(max=lengths)   # 0..length
    return mask, lengths, prefix

def qkv(meta, H, d, seed, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(meta.n_tokens, H, d, generator=g).requires_grad_(grad) for _ in range(3)]

# -- attention level ------------------------------------------------------------------------------------------------

def test_prefix_lm_mask_covers_causal_and_bidirectional():
    T = 7
    assert torch.equal(prefix_lm_mask(torch.tensor([0]), T)[0], torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.equal(prefix_lm_mask(torch.tensor([1]), T)[0], torch.ones(T, T, dtype=torch.bool).tril())  # p=1 == causal
    assert prefix_lm_mask(torch.tensor([T]), T).all()
    m = prefix_lm_mask(torch.tensor([3]), T)[0]
    assert m[:3, :3].all() and not m[:3, 3:].any() and torch.equal(m[3:, 3:], torch.ones(4, 4, dtype=torch.bool).tril())

@pytest.mark.parametrize("kind", ["causal", "prefix"])
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("alibi", [False, True])
@pytest.mark.parametrize("unpad", [True, False])
def test_sdpa_matches_eager_forward_backward(kind, seed, alibi, unpad):
    mask, _, prefix = ragged(5, 23, seed)
    if kind == "causal": prefix = torch.zeros_like(prefix)
    meta = Unpadded.from_mask(mask, unpad=unpad)
    al = Alibi(6) if alibi else None
    q, k, v = qkv(meta, 6, 16, seed, grad=True)
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    real = meta.attention_mask.flatten()[meta.indices]
    ref = eager_attention(q, k, v, meta, al, prefix=prefix)
    out = attention(q2, k2, v2, meta, al, backend="sdpa", prefix=prefix)
    assert torch.isfinite(ref).all() and torch.isfinite(out).all()                 # padding queries included
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref) * real[:, None, None]
    (ref * g).sum().backward(); (out * g).sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)): torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-5)

@pytest.mark.parametrize("kind", ["causal", "prefix"])
@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("unpad", [True, False])
def test_flex_matches_eager_forward(kind, seed, unpad):
    mask, _, prefix = ragged(4, 19, seed)
    if kind == "causal": prefix = torch.zeros_like(prefix)
    meta = Unpadded.from_mask(mask, unpad=unpad)
    al = Alibi(4)
    q, k, v = qkv(meta, 4, 16, seed)
    real = meta.attention_mask.flatten()[meta.indices]
    with torch.no_grad():
        torch.testing.assert_close(attention(q, k, v, meta, al, backend="flex", prefix=prefix)[real],
                                   eager_attention(q, k, v, meta, al, prefix=prefix)[real], atol=1e-5, rtol=1e-5)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU only: flex has no backward on CPU")
def test_flex_prefix_forward_backward_on_gpu():
    mask, _, prefix = ragged(6, 64, 0)
    meta = Unpadded.from_mask(mask.cuda())
    al = Alibi(8).cuda()
    q, k, v = (t.cuda().to(torch.bfloat16).requires_grad_() for t in qkv(meta, 8, 64, 0))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref = eager_attention(q.float(), k.float(), v.float(), meta, al, prefix=prefix.cuda())
    out = attention(q2, k2, v2, meta, al, backend="flex", prefix=prefix.cuda())
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    out.float().sum().backward(); ref.sum().backward()
    torch.testing.assert_close(q2.grad.float(), q.grad.float(), atol=5e-2, rtol=5e-2)

def test_left_padding_gives_no_nan():
    # a padding query before every real key would have an empty softmax row; the query always sees itself
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    meta = Unpadded.from_mask(mask, unpad=False)
    q, k, v = qkv(meta, 2, 8, 0)
    for backend in ("eager", "sdpa"):
        assert torch.isfinite(attention(q, k, v, meta, backend=backend, prefix=torch.zeros(2, dtype=torch.long))).all()

def test_bad_prefix_and_unsupported_backend_raise(monkeypatch):
    meta = Unpadded.from_mask(torch.ones(2, 5, dtype=torch.long))
    q, k, v = qkv(meta, 2, 8, 0)
    with pytest.raises(ValueError, match=r"prefix must be a \(2,\) integer tensor"): attention(q, k, v, meta, prefix=torch.zeros(3).long())
    with pytest.raises(ValueError, match="integer tensor"): attention(q, k, v, meta, prefix=torch.zeros(2))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # pretend flash-attn and a GPU exist
    with pytest.raises(ValueError, match="no causal / prefix-LM mask"):
        check_backend("flash_attn", device=torch.device("cuda"), dtype=torch.bfloat16, prefix=True)
    assert check_backend("flash_attn", device=torch.device("cuda"), dtype=torch.bfloat16).name == "flash_attn"

# -- model level ----------------------------------------------------------------------------------------------------

def model(pattern, seed=0, **kw):
    torch.manual_seed(seed)
    return MosaicBertModel(SMALL.replace(attention_pattern=pattern, **kw)).eval()

@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("unpad", [True, False])
def test_causal_output_at_t_ignores_later_tokens(backend, unpad):
    m = model("causal", attention_backend=backend, unpad=unpad)
    mask, lengths, _ = ragged(4, 16, 1)
    ids = torch.randint(5, 150, (4, 16)) * mask
    with torch.no_grad():
        base = m(ids, mask).last_hidden_state
        for t in (0, 5, 14):
            changed = ids.clone(); changed[:, t + 1:] = torch.randint(5, 150, (4, 16 - t - 1)) * mask[:, t + 1:]
            out = m(changed, mask).last_hidden_state
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-5, rtol=1e-5)
            assert not torch.allclose(out[-1, t + 1:], base[-1, t + 1:])   # later positions did change

@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_prefix_is_bidirectional_inside_and_causal_after(backend):
    m = model("prefix", attention_backend=backend)
    T, p = 12, 5
    ids = torch.randint(5, 150, (1, T)); pre = torch.tensor([p])
    with torch.no_grad():
        base = m(ids, prefix_lengths=pre).last_hidden_state[0]
        inside = ids.clone(); inside[0, p - 1] = (ids[0, p - 1] + 1 - 5) % 145 + 5   # last prefix token
        out = m(inside, prefix_lengths=pre).last_hidden_state[0]
        assert not torch.allclose(out[0], base[0])            # position 0 sees a later prefix token: bidirectional
        after = ids.clone(); after[0, p + 2] = (ids[0, p + 2] + 1 - 5) % 145 + 5     # a target token
        out = m(after, prefix_lengths=pre).last_hidden_state[0]
        torch.testing.assert_close(out[: p + 2], base[: p + 2], atol=1e-5, rtol=1e-5)  # nothing before it sees it
        assert not torch.allclose(out[p + 2:], base[p + 2:])

@pytest.mark.parametrize("pattern", ["causal", "prefix"])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_padded_equals_unpadded_and_each_row_alone(pattern, backend):
    mask, lengths, prefix = ragged(5, 21, 2)
    ids = torch.randint(5, 150, (5, 21)) * mask
    kw = {"prefix_lengths": prefix} if pattern == "prefix" else {}
    torch.manual_seed(0)
    a = MosaicBertForMaskedLM(SMALL.replace(attention_pattern=pattern, attention_backend=backend, masked_only_head=False))
    b = MosaicBertForMaskedLM(a.cfg.replace(unpad=False)); b.load_state_dict(a.state_dict())
    c = MosaicBertForMaskedLM(a.cfg.replace(masked_only_head=True)); c.load_state_dict(a.state_dict())
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    outs = [mdl(ids, mask, labels=labels, **kw) for mdl in (a, b, c)]
    real = mask.bool()
    torch.testing.assert_close(outs[0].logits[real], outs[1].logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[2].logits, outs[1].logits[real], atol=1e-5, rtol=1e-5)   # masked-only head path
    for o in outs: o.loss.backward()
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, atol=1e-5, rtol=1e-4, msg=lambda s: f"{n}: {s}")
        torch.testing.assert_close(pc.grad, pa.grad, atol=1e-5, rtol=1e-4, msg=lambda s: f"{n}: {s}")
    with torch.no_grad():  # a row run alone, with no padding at all, gives the same hidden states as inside the batch
        a.eval()
        full = a.bert(ids, mask, **kw).last_hidden_state
        for i in range(5):
            n = int(lengths[i])
            kwi = {"prefix_lengths": prefix[i:i + 1]} if pattern == "prefix" else {}
            torch.testing.assert_close(a.bert(ids[i:i + 1, :n], **kwi).last_hidden_state[0], full[i, :n], atol=1e-5, rtol=1e-5)

def test_config_round_trip_and_errors(tmp_path):
    m = MosaicBertForMaskedLM(SMALL.replace(attention_pattern="causal")).eval()
    save_pretrained(m, tmp_path)
    back = from_pretrained(tmp_path).eval()
    assert back.cfg.attention_pattern == "causal"
    ids = torch.randint(5, 150, (2, 7))
    assert torch.equal(back(ids).logits, m(ids).logits)
    old = {k: v for k, v in SMALL.to_dict().items() if k != "attention_pattern"}       # a config saved before the field
    assert MosaicBertConfig.from_dict(old).attention_pattern == "bidirectional"
    with pytest.raises(ValueError, match="'bidirectional', 'causal' or 'prefix'"): SMALL.replace(attention_pattern="decoder")
    with pytest.raises(ValueError, match="no causal / prefix-LM mask"):
        SMALL.replace(attention_pattern="prefix", attention_backend="flash_attn")
    p = model("prefix")
    with pytest.raises(ValueError, match="needs prefix_lengths"): p(ids)
    with pytest.raises(ValueError, match=r"must be a \(2,\) integer tensor"): p(ids, prefix_lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 7\]"): p(ids, prefix_lengths=torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match="attention_pattern is 'causal'"): model("causal")(ids, prefix_lengths=torch.tensor([1, 2]))
