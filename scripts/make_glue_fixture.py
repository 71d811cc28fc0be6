"""Write tests/fixtures/glue: a tiny offline stand-in for the HF hub dataset `nyu-mll/glue`, in its exact layout.

The hub stores each config as `<config>/<split>-00000-of-00001.parquet` with the features below (DATA.md): an int32
`idx`, the task's text fields, and `label` as a ClassLabel (float32 for STS-B); test labels are -1. The rows are
made-up sentences (no GLUE text is copied): they only exercise loading, field names, label maps and metrics.

    python scripts/make_glue_fixture.py
"""
import random
from pathlib import Path
import datasets
from datasets import ClassLabel, Features, Value

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "glue"
TASKS = {  # config: (text fields, label names or None for regression, splits)
    "cola": (["sentence"], ["unacceptable", "acceptable"], ["train", "validation", "test"]),
    "sst2": (["sentence"], ["negative", "positive"], ["train", "validation", "test"]),
    "mrpc": (["sentence1", "sentence2"], ["not_equivalent", "equivalent"], ["train", "validation", "test"]),
    "qqp": (["question1", "question2"], ["not_duplicate", "duplicate"], ["train", "validation", "test"]),
    "stsb": (["sentence1", "sentence2"], None, ["train", "validation", "test"]),
    "mnli": (["premise", "hypothesis"], ["entailment", "neutral", "contradiction"],
             ["train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"]),
    "qnli": (["question", "sentence"], ["entailment", "not_entailment"], ["train", "validation", "test"]),
    "rte": (["sentence1", "sentence2"], ["entailment", "not_entailment"], ["train", "validation", "test"]),
    "wnli": (["sentence1", "sentence2"], ["not_entailment", "entailment"], ["train", "validation", "test"]),
}
WORDS = "the a cat dog bird sat ran on under near table house garden quickly slowly happy sad red blue big small".split()

def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."

def main():
    rng = random.Random(0)
    for cfg, (fields, labels, splits) in TASKS.items():
        feats = {"idx": Value("int32")}
        feats.update({f: Value("string") for f in fields})
        feats["label"] = Value("float32") if labels is None else ClassLabel(names=labels)
        feats = Features({k: feats[k] for k in fields + ["label", "idx"]})
        for split in splits:
            n = 48 if split == "train" else 16
            rows = {f: [sentence(rng) for _ in range(n)] for f in fields}
            if split.startswith("test"): rows["label"] = [-1.0 if labels is None else -1] * n
            elif labels is None: rows["label"] = [round(rng.uniform(0, 5), 3) for _ in range(n)]
            else: rows["label"] = [i % len(labels) for i in range(n)]
            rows["idx"] = list(range(n))
            ds = datasets.Dataset.from_dict(rows, features=feats)
            (OUT / cfg).mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(OUT / cfg / f"{split}-00000-of-00001.parquet"))
    print(f"wrote {OUT}")

if __name__ == "__main__": main()
