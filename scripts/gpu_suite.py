#!/usr/bin/env python
"""The GPU checks of mosaiclab in one run (< 10 minutes on one H100/H200):

1. attention backends agree with the eager reference on CUDA (eager, sdpa, flex, flash_attn if installed),
   forward and backward, in bf16; then the same for a whole MosaicBERT model (loss and gradients);
2. training throughput (real tokens/s, forward + backward + AdamW) and MFU of MosaicBERT-Base against
   the same code with its switches off and HF BERT-Base (`BertForMaskedLM`, sdpa) at equal sizes,
   seq 128 and 512, bf16, batches with the bundled corpus's real lengths (`mosaiclab.bench.run_throughput`).

Results, with hardware, commit and command, go to `<out>/gpu_suite.json` (default `results/gpu/`).

    python scripts/gpu_suite.py                      # on a CUDA machine
    python scripts/gpu_suite.py --dry --out /tmp/g   # CPU, tiny sizes, seconds: checks the script itself

Exit status 1 when a backend disagrees with the reference or errors (a backend that cannot run here,
e.g. flash_attn not installed, is reported as skipped with the reason).
"""
import argparse, datetime, json, shlex, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # run from a checkout without installing it

import torch
from mosaiclab.alibi import Alibi
from mosaiclab.attention import BACKENDS, attention, check_backend
from mosaiclab.bench import run_throughput
from mosaiclab.experiment import git_commit, hardware_info
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.padding import Unpadded

H100_BF16_PEAK = 989e12  # dense bf16 tensor-core FLOP/s of an H100 / H200 SXM (NVIDIA datasheet; 2x that is with sparsity)
BATCH = {128: 256, 512: 64}  # samples per step: the same tokens per step at both lengths


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    "Largest absolute difference relative to the reference's largest magnitude."
    return float((a.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6))


def _usable(name: str, device, dtype) -> str | None:
    "None when backend `name` can train here, else why not (never a silent fallback)."
    try: check_backend(name, device=device, dtype=dtype, needs_grad=True, unpadded=True)
    except Exception as e: return f"{type(e).__name__}: {e}"
    return None


def attention_equivalence(device, dtype, B: int, T: int, H: int, d: int, tol: float, seed: int = 0) -> dict:
    "Every backend's output and q/k/v gradients on a ragged, unpadded batch with ALiBi, against eager in fp32."
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, T // 4), T + 1, (B,), generator=g); lengths[0] = T
    meta = Unpadded.from_mask((torch.arange(T)[None] < lengths[:, None]).to(device))
    q, k, v, gout = (torch.randn(meta.n_tokens, H, d, generator=g) for _ in range(4))   # (N, H, d)
    alibi = Alibi(H).to(device)

    def run(backend, dt):
        qkv = [t.to(device, dt).clone().requires_grad_() for t in (q, k, v)]   # fresh leaves for every backend
        out = attention(*qkv, meta, alibi, 0.0, backend)
        out.backward(gout.to(device, dt))
        return [out.detach()] + [t.grad for t in qkv]

    ref = run("eager", torch.float32)
    res = {}
    for name in BACKENDS:
        why = _usable(name, torch.device(device), dtype)
        if why: res[name] = {"status": "skipped", "reason": why}; continue
        try:
            errs = {n: _rel(a, b) for n, a, b in zip(("out", "dq", "dk", "dv"), run(name, dtype), ref)}
            res[name] = {"status": "ok" if max(errs.values()) < tol else "MISMATCH", "rel_err": errs, "tol": tol}
        except Exception as e:
            res[name] = {"status": "error", "reason": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
    return {"B": B, "T": T, "H": H, "d_head": d, "lengths": lengths.tolist(), "dtype": str(dtype), "backends": res}


def model_equivalence(device, cfg: MosaicBertConfig, B: int, T: int, tol: float, seed: int = 0) -> dict:
    "MosaicBERT's masked-LM loss and gradients under bf16 autocast with each backend, against eager (same weights, eval mode)."
    torch.manual_seed(seed)
    base = MosaicBertForMaskedLM(cfg.replace(attention_backend="eager")).to(device).eval()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(2, T // 4), T + 1, (B,), generator=g); lengths[0] = T
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    ids = torch.randint(5, cfg.vocab_size, (B, T), generator=g) * mask
    labels = torch.where((torch.rand(B, T, generator=g) < 0.3) & mask.bool(), ids, -100)
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)

    def run(model):
        model.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss = model(ids, mask, labels=labels).loss
        loss.backward()
        return float(loss), torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])

    ref_loss, ref_grad = run(base)
    res = {}
    for name in BACKENDS:
        why = _usable(name, torch.device(device), torch.bfloat16)
        if why: res[name] = {"status": "skipped", "reason": why}; continue
        try:
            m = MosaicBertForMaskedLM(cfg.replace(attention_backend=name)).to(device).eval()
            m.load_state_dict(base.state_dict())
            loss, grad = run(m)
            err = {"loss_abs": abs(loss - ref_loss), "grad_rel": float((grad - ref_grad).norm() / ref_grad.norm())}
            res[name] = {"status": "ok" if err["loss_abs"] < tol and err["grad_rel"] < 5 * tol else "MISMATCH", "err": err, "tol": tol}
        except Exception as e:
            res[name] = {"status": "error", "reason": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
    return {"config": cfg.to_dict(), "B": B, "T": T, "reference_loss": ref_loss, "backends": res}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="CPU, tiny sizes, quick benchmark: checks the script in seconds")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/gpu; a temporary folder with --dry)")
    p.add_argument("--seq", type=int, nargs="+", default=[128, 512], help="sequence lengths for the throughput runs")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    t0 = time.time()
    device = "cpu" if args.dry else "cuda"
    if not args.dry and not torch.cuda.is_available():
        print("no CUDA device: run with --dry on a CPU", file=sys.stderr); return 2
    if args.out is None:
        import tempfile
        args.out = Path(tempfile.mkdtemp(prefix="gpu_suite_dry_")) if args.dry else ROOT / "results" / "gpu"
    dtype = torch.bfloat16
    result = {"kind": "gpu_suite", "dry": args.dry, "device": device}

    # 1. equivalence
    if args.dry:
        att = attention_equivalence(device, dtype, B=3, T=16, H=2, d=8, tol=3e-2)
        small = MosaicBertConfig.lab().replace(d_model=32, n_layers=2, n_heads=2, d_ff=64)
        mod = model_equivalence(device, small, B=3, T=16, tol=5e-2)
    else:
        att = attention_equivalence(device, dtype, B=8, T=512, H=12, d=64, tol=3e-2)
        mod = model_equivalence(device, MosaicBertConfig.lab().replace(d_model=256, n_layers=4, n_heads=4), B=16, T=128, tol=5e-2)
    result["attention_equivalence"], result["model_equivalence"] = att, mod
    for what, r in (("attention", att), ("model", mod)):
        for name, x in r["backends"].items():
            print(f"{what:9s} {name:10s} {x['status']:8s} {x.get('rel_err') or x.get('err') or x.get('reason')}")
    print(f"[{time.time() - t0:.0f}s] equivalence done")

    # 2. throughput: MosaicBERT-Base vs the same code with switches off vs HF BERT-Base, bf16
    backends = ["sdpa"] + [b for b in ("flash_attn",) if _usable(b, torch.device(device), dtype) is None]
    result["throughput"] = {}
    for seq in args.seq:
        if args.dry:
            res = run_throughput(quick=True, precisions=("bf16",), device=device, verbose=False)
        else:
            base = MosaicBertConfig.mosaic_bert_base()
            res = run_throughput(d_model=base.d_model, n_layers=base.n_layers, n_heads=base.n_heads, d_ff=base.d_ff,
                                 batch_size=BATCH.get(seq, max(1, 32768 // seq)), seq_len=seq, precisions=("bf16",),
                                 warmup=3, steps=5, repeats=args.repeats, backends=backends, device=device,
                                 peak_flops={"bf16": H100_BF16_PEAK}, verbose=True)
        result["throughput"][str(seq)] = res
        print(f"[{time.time() - t0:.0f}s] throughput at seq {seq} done")

    argv0 = list(getattr(sys, "orig_argv", sys.argv)); argv0[0] = Path(argv0[0]).name
    result.update(hardware=hardware_info(device), **git_commit(ROOT), command=shlex.join(argv0),
                  timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  peak_reference={"bf16": H100_BF16_PEAK, "source": "H100/H200 SXM dense bf16 datasheet"},
                  wall_s=time.time() - t0)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_suite.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path} ({time.time() - t0:.0f}s)")
    bad = [f"{w}/{n}" for w, r in (("attention", att), ("model", mod)) for n, x in r["backends"].items() if x["status"] in ("MISMATCH", "error")]
    bad += [f"throughput/{seq}/{k}" for seq, r in result["throughput"].items() for k in r.get("failed", {})]  # e.g. the HF row raised
    if bad: print("FAILED:", ", ".join(bad), file=sys.stderr); return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
