"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does with Quarto, done without it).

    python scripts/make_readme.py          # write README.md
    python scripts/make_readme.py --check  # exit 1 if README.md differs from what would be written
"""
import argparse, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file. -->\n\n"

def render(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "Markdown cells as they are, code cells as python blocks (nbdev directives dropped)."
    nb = json.loads(nb_path.read_text())
    parts = []
    for c in nb["cells"]:
        src = "".join(c["source"]).strip()
        if c["cell_type"] == "markdown":
            # nbdev's "> summary" line under the title is a blockquote in both renderers.
            parts.append(src)
        elif c["cell_type"] == "code":
            code = "\n".join(l for l in src.splitlines() if not re.match(r"^#\|", l)).strip()
            if code: parts.append(f"```python\n{code}\n```")
    text = "\n\n".join(parts) + "\n"
    # Links in the notebook are relative to nbs/; the README sits one level up.
    text = re.sub(r"\]\((?!https?:|#|/)([^)]+)\)", r"](nbs/\1)", text)
    return HEADER + text

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    a = ap.parse_args()
    want, readme = render(), ROOT / "README.md"
    if a.check:
        if not readme.exists() or readme.read_text() != want:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python scripts/make_readme.py`")
        print("README.md is up to date"); return
    readme.write_text(want); print(f"wrote {readme}")

if __name__ == "__main__": main()
