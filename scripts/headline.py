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
    p = load("pareto", "results.json")
    ttq = time_to_quality(p, "eval_loss"); ttq_own = time_to_quality(p, "eval_loss", clock="train_seconds")
    lab = load("finetune", "lab_suite.json"); f = lab["results"]
    avg = {k: v["summary"]["average"] for k, v in f.items()}
    fixed = load("lab_ref", "fixed_eval.json")
    rows = [("what", "measured", "source"),
            ("MosaicBERT / HF BertForMaskedLM (sdpa), training tokens/s, fp32, 2 CPU threads",
             "; ".join(f"{k}: {v:.2f}x" for k, v in ((k, v["of_medians"]) for k, v in r["fp32"].items())) + f" (target 3.3x: {'met' if r['fp32']['mosaicbert']['of_medians'] >= 3.3 else 'not met'})",
             "results/throughput/cpu.json"),
            ("lab Pareto: time for MosaicBERT to reach the BERT baseline's final validation MLM loss",
             f"{ttq['ratio']:.2f}x the baseline's time (runs' own clock: {ttq_own['ratio']:.2f}x); {len(p['seeds'])} seeds, budgets {p['budgets']} steps",
             "results/pareto/results.json"),
            (f"lab suite average after fine-tuning ({', '.join(next(iter(f.values()))['summary']['tasks'])})",
             "; ".join(f"{k}: {v:.1f}" for k, v in avg.items()), "results/finetune/lab_suite.json"),
            ("validation MLM loss on a fixed text (the first corpus's validation split, 15% masking)",
             f"default `mosaiclab pretrain`: {lab['pretrained_summary']['eval_loss']:.2f} nats; lab-ref: {fixed['eval_loss']:.2f} nats",
             "results/finetune/lab_suite.json, results/lab_ref/fixed_eval.json")]
    print("| " + " | ".join(rows[0]) + " |\n|---|---|---|")
    for row in rows[1:]: print("| " + " | ".join(row) + " |")

if __name__ == "__main__": main()
