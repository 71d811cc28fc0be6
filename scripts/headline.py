"""Print the README's headline table from the committed results files (so no headline number is typed by hand).

    python scripts/headline.py     # markdown, pasted into nbs/index.ipynb's "Headline results" section
"""
import json
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent

def load(*p): return json.loads((ROOT / "results" / Path(*p)).read_text())

def main():
    import sys; sys.path.insert(0, str(ROOT))
    from mosaiclab.pareto import time_to_quality
    t = load("throughput", "cpu.json")
    r = {k: v for k, v in t["ratios_vs_hf"].items()}
    a = load("throughput", "cpu_anchor.json")
    p = load("pareto", "results.json")
    ttq = time_to_quality(p, "eval_loss"); ttq_own = time_to_quality(p, "eval_loss", clock="train_seconds")
    ttq_suite = time_to_quality(p, "lab_suite")
    lab = load("finetune", "lab_suite.json"); f = lab["results"]
    avg = {k: v["summary"]["average"] for k, v in f.items()}
    fixed = load("lab_ref", "fixed_eval.json")
    dfix = load("finetune", "fixed_eval.json") if (ROOT / "results" / "finetune" / "fixed_eval.json").exists() else None
    from mosaiclab.experiment import paired_diff
    src = {v["source"]: k for k, v in f.items()}
    rand, labref = src["random:lab"], src["lab-ref"]
    pre = next(k for k, v in f.items() if k not in (rand, labref, src.get("minilm")) and not v["source"].startswith("baseline:"))
    ps = lab["pretrained_summary"]
    def gain(a, b):   # per task: mean, std and count of score(b) - score(a) over matched seeds
        by_seed = lambda src, t: {r["seed"]: r["score"] for r in f[src]["runs"] if r["task"] == t}
        return {t: paired_diff(by_seed(b, t), by_seed(a, t)) for t in f[a]["summary"]["tasks"]}
    n_seeds = min(n for _, _, n in gain(rand, pre).values())
    from mosaiclab.experiment import paired_verdict
    mr = load("masking_rate", "results.json"); mr_steps = mr["runs"][0]["summary"]["steps"]
    at = lambda p, f: {r["seed"]: f(r) for r in mr["runs"] if r["mlm_probability"] == p}
    ml = paired_verdict(at(0.3, lambda r: r["summary"]["eval_loss"]), at(0.15, lambda r: r["summary"]["eval_loss"]), sign=-1)
    ms = paired_verdict(at(0.3, lambda r: r["lab_suite"]["summary"]["average"]), at(0.15, lambda r: r["lab_suite"]["summary"]["average"]))
    lng = load("finetune", "defmatch_long.json") if (ROOT / "results" / "finetune" / "defmatch_long.json").exists() else None
    if lng:   # the same paired gain, on the longer fine-tune's file
        lf = lng["results"]; lsrc = {v["source"]: k for k, v in lf.items()}; lr = lsrc["random:lab"]; lp = next(k for k in lf if k != lr)
        lby = lambda src, t: {r["seed"]: r["score"] for r in lf[src]["runs"] if r["task"] == t}
        lgain = {t: paired_diff(lby(lp, t), lby(lr, t)) for t in lf[lr]["summary"]["tasks"]}
    rows = [("what", "measured", "source"),
            ("MosaicBERT / HF BertForMaskedLM (sdpa), training tokens/s, fp32, 2 CPU threads, the bundled corpus's lengths (an earlier run)",
             "; ".join(f"{k}: {v:.2f}x" for k, v in ((k, v["of_medians"]) for k, v in r["fp32"].items())) + f" (target 3.3x: {'met' if r['fp32']['mosaicbert']['of_medians'] >= 3.3 else 'not met'})",
             "results/throughput/cpu.json"),
            ("MosaicBERT training tokens/s at issue 16's anchor config (lengths uniform 24-128, 2 CPU threads), side by side",
             "; ".join(f"{prec}: {rv['mosaicbert']['of_medians']:.2f}x HF, {ro['mosaicbert']['of_medians']:.2f}x the original, MFU "
                       f"{next(x['mfu'] for x in a['rows'] if x['key'] == 'mosaicbert' and x['precision'] == prec):.0%}"
                       for prec, rv in a["ratios_vs_hf"].items() for ro in [a["ratios_vs_original"][prec]])
             + " (targets 4.5x / 5x HF, 1.5x the original, MFU 70%)",
             "results/throughput/cpu_anchor.json"),
            ("lab Pareto: time for MosaicBERT to reach the BERT baseline's final quality (calibrated clock)",
             f"validation MLM loss: {ttq['ratio']:.2f}x the baseline's time (runs' own clock: {ttq_own['ratio']:.2f}x); lab-suite average: "
             + ("never reached" if ttq_suite["ratio"] is None else f"{ttq_suite['ratio']:.2f}x")
             + f"; {len(p['seeds'])} seeds, budgets {p['budgets']} steps",
             "results/pareto/results.json"),
            (f"lab suite average after fine-tuning ({', '.join(next(iter(f.values()))['summary']['tasks'])})",
             "; ".join(f"{k}: {v:.1f}" for k, v in avg.items()), "results/finetune/lab_suite.json"),
            ("default `mosaiclab pretrain` (no arguments): time, and lab-suite gain over random init (paired over seeds)",
             f"{ps['steps']} steps in {ps['train_seconds'] / 60:.1f} min ({ps['precision']}); average {avg[pre] - avg[rand]:+.1f} points; "
             + ", ".join(f"{t} {m:+.1f} ± {sd:.1f}" for t, (m, sd, n) in gain(rand, pre).items()) + f" ({n_seeds} seeds)",
             "results/finetune/lab_suite.json"),
            *([] if lng is None else [(
              "default `mosaiclab pretrain`, the pair task with a longer fine-tune "
              f"({lng['overrides']['max_train_samples']} examples, {lng['overrides']['epochs']:g} epochs): gain over random init",
              ", ".join(f"{t} {m:+.1f} ± {sd:.1f} ({n} seeds)" for t, (m, sd, n) in lgain.items()),
              "results/finetune/defmatch_long.json")]),
            ("lab-ref (the shipped reference encoder): lab-suite gain over random init (paired over seeds)",
             f"average {avg[labref] - avg[rand]:+.1f} points; "
             + ", ".join(f"{t} {m:+.1f} ± {sd:.1f}" for t, (m, sd, n) in gain(rand, labref).items()),
             "results/finetune/lab_suite.json"),
            ("30% vs 15% masking (the lab preset, paired over pretraining seeds; loss scored at 15%)",
             f"validation loss {ml['mean']:+.3f} ± {ml['std']:.3f} nats ({ml['verdict']}); lab-suite average "
             f"{ms['mean']:+.1f} ± {ms['std']:.1f} points ({ms['verdict']}); {ml['n']} seeds, {mr_steps} steps",
             "results/masking_rate/results.json"),
            ("validation MLM loss on a fixed text (the first corpus's validation split, 15% masking)",
             (f"default `mosaiclab pretrain`: {dfix['eval_loss']:.2f} nats; " if dfix else "") + f"lab-ref: {fixed['eval_loss']:.2f} nats",
             "results/finetune/fixed_eval.json, results/lab_ref/fixed_eval.json")]
    print("| " + " | ".join(rows[0]) + " |\n|---|---|---|")
    for row in rows[1:]: print("| " + " | ".join(row) + " |")

if __name__ == "__main__": main()
