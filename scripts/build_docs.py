#!/usr/bin/env python
"""Build the documentation site without Quarto: execute, nbdev-process and convert every notebook to HTML.

    python scripts/build_docs.py                 # -> _site/
    python scripts/build_docs.py --only 'library/*' --jobs 2 --out /tmp/site

Works offline. Quarto (`nbdev_docs`, `nbdev_preview`) stays the way to render the published book
where it is installed; this script is the build that runs anywhere, in CI and in `tests/test_docs.py`.

Pipeline, for each notebook under `nbs/` (committed without outputs):

1. **Execute** the notebook from `nbs/` with nbclient (kernel python3, cwd = the notebook's folder,
   a per-cell timeout, `#| eval: false` cells skipped, the checkout's `mosaiclab` first on
   PYTHONPATH), `--jobs` notebooks at a time. The *source* notebook is executed, not the
   processed one: nbdev's processing drops `#| export` and `#| hide` cells, so a processed notebook
   no longer defines what its later cells use. This is also the order nbdev itself assumes
   (notebooks with outputs -> processing -> render). Executed copies go to a temporary staging folder
   that mirrors `nbs/`; nothing is written into `nbs/`.
2. **nbdev processing**: `nbdev.serve.proc_nbs(path=<staging>)` writes `_proc/` exactly as
   `nbdev_proc_nbs` does, but skips its Quarto install and `pip install -e .`. It applies nbdev's
   directives: `#| hide` and `#| default_exp` cells are dropped, `#| export` cells are replaced by
   their `show_doc` documentation (nbdev shows the *code* only for `#| exports`), the title cell
   becomes front matter. If `proc_nbs` fails, each notebook is processed on its own so that the
   failing one is named and the others still build.
3. **Convert** each processed notebook with nbconvert (the `lab` template, extended) to
   `<out>/<same relative path>.html`, with a sidebar of all pages in the order of
   `_quarto.yml`'s `website.sidebar` (notebooks it does not list come last), previous/next links,
   the site title from `_quarto.yml` (or settings.ini), links `foo.ipynb` -> `foo.html`, and the
   Quarto cell options that nbdev leaves for Quarto (`#| echo: false`, `#| output: false`,
   `#| include: false`) applied. `nbs/index.ipynb` becomes `<out>/index.html`.

Plotly figures: notebooks run with `PLOTLY_RENDERER=plotly_mimetype` (set in the environment the
kernels inherit), so a figure's output is only its JSON (`application/vnd.plotly.v1+json`), never
the 4.8 MB library. When converting, each such output is rendered into a `<div>` plus a
`Plotly.newPlot` call with `plotly.io.to_html(..., include_plotlyjs=False)`, and the single copy of
`plotly.min.js` from the installed plotly package is written once to `<out>/assets/plotly.min.js`
and loaded by every page with a relative `<script src>`. Any text/html output that embeds plotly.js
anyway (e.g. `fig.show(renderer="notebook")`) has the inline library removed. The lab template's
require.js is not loaded (plotly.js would register as an AMD module instead of `window.Plotly`),
nor mermaid; its notebook CSS is written once to `<out>/assets/notebook.css`. Math uses MathJax
from its CDN (`--mathjax-url`): online it renders, offline the TeX stays as text.

Exit status is non-zero when any notebook fails; the failing notebook, cell and error are printed.
"""
from __future__ import annotations

import argparse, configparser, fnmatch, html, json, os, re, shutil, sys, tempfile, time, traceback
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def log(msg: str): print(msg, flush=True)


# ----------------------------------------------------------------------------------------- site
def find_notebooks(nbs: Path = NBS) -> list[str]:
    "Notebook paths relative to `nbs`, skipping `_*`/`.*` files and folders and checkpoints (as nbdev does)."
    out = []
    for p in nbs.rglob("*.ipynb"):
        rel = p.relative_to(nbs)
        if any(part.startswith(("_", ".")) for part in rel.parts): continue
        out.append(rel.as_posix())
    return sorted(out)


def _read_quarto(root: Path = ROOT) -> dict:
    import yaml
    f = root / "_quarto.yml"
    if not f.exists(): f = root / "nbs" / "_quarto.yml"
    return (yaml.safe_load(f.read_text()) or {}) if f.exists() else {}


def site_config(root: Path = ROOT) -> dict:
    "Title, repository url and the sidebar (list of (section or None, [notebook paths])) in reading order."
    q = _read_quarto(root)
    ini = configparser.ConfigParser()
    ini.read(root / "settings.ini")
    s = ini["DEFAULT"] if "DEFAULT" in ini else {}
    web = q.get("website") or {}
    title = web.get("title") or s.get("title") or s.get("lib_name") or "Documentation"
    groups: list[tuple[str | None, list[str]]] = []

    def walk(items, section):
        flat = []
        for it in items or []:
            if isinstance(it, str): flat.append(it)
            elif isinstance(it, dict):
                if "section" in it or "contents" in it:
                    if flat: groups.append((section, flat)); flat = []
                    walk(it.get("contents"), it.get("section") or it.get("text"))
                elif "href" in it: flat.append(it["href"])
        if flat: groups.append((section, flat))

    sb = web.get("sidebar") or {}
    if isinstance(sb, list): sb = sb[0] if sb else {}
    walk(sb.get("contents"), None)
    return dict(title=title, repo=s.get("git_url", ""), description=s.get("description", ""), groups=groups)


def page_order(notebooks: list[str], groups) -> list[tuple[str | None, list[str]]]:
    "The sidebar's groups restricted to existing notebooks, then every unlisted notebook."
    seen, out = set(), []
    for sec, items in groups:
        keep = [i for i in items if i in notebooks and i not in seen]
        seen.update(keep)
        if keep: out.append((sec, keep))
    rest = [n for n in notebooks if n not in seen]
    if rest: out.append(("More" if out else None, rest))
    return out


def html_path(nb: str) -> str: return nb[:-len(".ipynb")] + ".html"


def rel_url(target: str, current: str) -> str:
    "URL of site path `target` seen from the page at site path `current`."
    return os.path.relpath(target, os.path.dirname(current) or ".").replace(os.sep, "/")


# ------------------------------------------------------------------------------------- execute
def execute_one(nb_rel: str, staging: Path, timeout: int, nbs: Path = NBS) -> tuple[str, float, str | None]:
    "Execute `nbs/nb_rel` in its folder and write it with outputs under `staging`. Returns (nb, seconds, error)."
    import nbformat
    from nbclient.exceptions import CellExecutionError
    _Client = _client_class()
    t0 = time.time()
    src = nbs / nb_rel
    nb = nbformat.read(src, as_version=4)
    client = _Client(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            record_timing=False, resources={"metadata": {"path": str(src.parent)}})
    err = None
    with tempfile.TemporaryFile("w+") as kernel_err:
        try: client.execute(stderr=kernel_err)
        except CellExecutionError as e:
            err = _cell_error(nb, e)
        except Exception as e:  # the kernel died, a cell timed out, ...
            idx = _failed_cell(nb)
            kernel_err.seek(0)
            tail = "\n".join(l for l in kernel_err.read().splitlines() if "without encryption" not in l)[-2000:]
            err = (f"{type(e).__name__}: {_ANSI.sub('', str(e)).strip()[-3000:]}" + (f"\n(in cell {idx})" if idx is not None else "")
                   + (f"\nkernel stderr:\n{tail}" if tail.strip() else ""))
    if err is None:
        dst = staging / nb_rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
    return nb_rel, time.time() - t0, err


_EVAL_FALSE = re.compile(r"^\s*#\|\s*eval\s*:\s*false\s*$", re.M | re.I)


def _client_class():
    from nbclient import NotebookClient

    class Client(NotebookClient):
        "Skips cells marked `#| eval: false`, as Quarto and nbdev_test do."
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == "code" and _EVAL_FALSE.search(cell.source): return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
    return Client


def _failed_cell(nb):
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", [])): return i
    return None


def _cell_error(nb, e) -> str:
    idx = _failed_cell(nb)
    head = f"cell {idx}" if idx is not None else "a cell"
    src = nb.cells[idx].source if idx is not None else ""
    src = "\n".join("    " + l for l in src.splitlines()[:15])
    tb = _ANSI.sub("", str(e)).strip()
    # nbclient's message: the cell source, a traceback, then "<ename>: <evalue>"; keep its end
    tb = "\n".join(tb.splitlines()[-25:])
    return f"{head} failed:\n{src}\n  ---\n{tb}"


# ------------------------------------------------------------------------------------ process
def _describe(e: BaseException) -> str:
    "nbdev's processing error: its message (notebook title, cell, source) and the root cause from the worker's traceback."
    msg = _ANSI.sub("", str(e)).strip()
    cause = e.__cause__ or e.__context__
    root = ""
    if cause is not None:
        txt = _ANSI.sub("", str(cause)).split("The above exception was the direct cause")[0]
        lines = [l for l in txt.strip().strip('"').splitlines() if l.strip()]
        root = "\n".join(lines[-3:])
    hint = ""
    if "NameError" in root:
        hint = ("\n  (nbdev's show_doc pass re-runs only `#| export` cells and cells containing imports, in a fresh shell "
                "with cwd at the repository root; a cell mixing imports with code that needs other cells fails there: "
                "put the imports in a cell of their own, see nbdev's FAQ)")
    return f"{msg}\n  ---\n{root}{hint}" if root else msg + hint


def nbdev_process(staging: Path, built: list[str], jobs: int) -> tuple[Path, dict[str, str]]:
    "Run nbdev's processing over the executed notebooks into `_proc/`. Returns (_proc path, {nb: error})."
    from nbdev.serve import proc_nbs
    proc = ROOT / "_proc"
    if not built: return proc, {}
    try:
        proc = Path(proc_nbs(path=str(staging), n_workers=max(1, jobs), force=True))
        return proc, {}
    except Exception as e:
        log(f"  proc_nbs failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); processing notebooks one by one")
    # the same per-file driver proc_nbs runs, one future per notebook so a failure names its notebook
    import nbdev.serve_drv
    from nbdev.processors import FilterDefaults
    errors = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as ex:
        futs = {}
        for nb in built:
            (proc / nb).parent.mkdir(parents=True, exist_ok=True)
            futs[ex.submit(nbdev.serve_drv.main, (staging / nb, proc / nb, FilterDefaults))] = nb
        for f in as_completed(futs):
            try: f.result()
            except Exception as e: errors[futs[f]] = _describe(e) + _source_cell(futs[f], str(e))
    return proc, errors


def _source_cell(nb_rel: str, msg: str) -> str:
    "Which cell of the source notebook nbdev's message (which counts processed cells) is about."
    lines = [l for l in msg.split(":\n", 1)[-1].splitlines() if l.strip() and not l.lstrip().startswith("#|")]
    if not lines: return ""
    try:
        nb = json.loads((NBS / nb_rel).read_text(encoding="utf-8"))
        for i, c in enumerate(nb["cells"]):
            if c["cell_type"] == "code" and lines[0] in "".join(c["source"]): return f"\n  = cell {i} (counting from 0) of nbs/{nb_rel}"
    except Exception: pass
    return ""


# ------------------------------------------------------------------------------------ convert
_OPT = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
_DIRECTIVE = re.compile(r"^\s*#\|")
_PLOTLYJS_SCRIPT = re.compile(r"<script[^>]*>(?:(?!</script>).)*?(?:plotly\.js v\d|window\.PlotlyConfig|define\.amd)(?:(?!</script>).)*</script>", re.S)
_CDN_PLOTLY = re.compile(r"<script[^>]*src=\"https?://cdn\.plot\.ly/[^\"]*\"[^>]*>\s*</script>")


def _truthy(v: str) -> bool | None:
    v = v.strip().strip("'\"").lower()
    return True if v in ("true", "yes", "1") else False if v in ("false", "no", "0") else None


def apply_cell_options(nb):
    "Apply the Quarto cell options nbdev leaves in the source (echo/output/include) and strip `#|` lines."
    cells = []
    for c in nb.cells:
        if c.cell_type != "code": cells.append(c); continue
        lines = c.source.splitlines()
        opts, i = {}, 0
        while i < len(lines) and (_DIRECTIVE.match(lines[i]) or not lines[i].strip()):
            m = _OPT.match(lines[i])
            if m: opts[m.group(1)] = m.group(2)
            i += 1
        c.source = "\n".join(lines[i:])
        tags = set(c.metadata.get("tags", []))
        if _truthy(opts.get("include", "")) is False: continue
        if _truthy(opts.get("echo", "")) is False or not c.source.strip(): tags.add("remove_input")
        if _truthy(opts.get("output", "")) is False: c.outputs = []
        if tags: c.metadata["tags"] = sorted(tags)
        cells.append(c)
    nb.cells = cells


def render_plotly_outputs(nb) -> int:
    "Replace plotly JSON outputs with a div + Plotly.newPlot (no library); strip inlined plotly.js. Returns #figures."
    import plotly.io as pio
    n = 0
    for c in nb.cells:
        if c.cell_type != "code": continue
        # nbdev's show_doc pass re-runs import cells and can leave an empty result next to a figure
        c.outputs = [o for o in c.get("outputs", []) if o.get("output_type") not in ("display_data", "execute_result") or o.get("data")]
        for o in c.outputs:
            data = o.get("data") if o.get("output_type") in ("display_data", "execute_result") else None
            if not data: continue
            if PLOTLY_MIME in data:
                fig = data[PLOTLY_MIME]
                if isinstance(fig, str): fig = json.loads(fig)
                config = {**(fig.get("config") or {}), "responsive": True}
                div = pio.to_html({"data": fig.get("data", []), "layout": fig.get("layout", {})}, include_plotlyjs=False,
                                  full_html=False, config=config, validate=False, default_width="100%",
                                  default_height=(fig.get("layout") or {}).get("height") or 500)
                o["data"] = {"text/html": div, "text/plain": data.get("text/plain", "<Figure>")}
                n += 1
            elif "text/html" in data:
                h = data["text/html"]
                h = "".join(h) if isinstance(h, list) else h
                if "Plotly.newPlot" in h:
                    h2 = _CDN_PLOTLY.sub("", _PLOTLYJS_SCRIPT.sub("", h))
                    data["text/html"] = h2
                    n += 1
    return n


def split_frontmatter(nb) -> dict:
    "Remove nbdev's front-matter raw cell and return it as a dict."
    import yaml
    for i, c in enumerate(nb.cells):
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            body = c.source.strip().strip("-").strip()
            try: fm = yaml.safe_load(body) or {}
            except Exception: fm = {}
            del nb.cells[i]
            return fm if isinstance(fm, dict) else {}
    return {}


_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block notebook_css %}<link rel="stylesheet" href="{{ resources.site_root }}assets/notebook.css">{% endblock notebook_css %}
{%- block html_head_css -%}
<link rel="stylesheet" href="{{ resources.site_root }}assets/site.css">
{%- if resources.has_plotly %}
<script src="{{ resources.site_root }}assets/plotly.min.js"></script>
{%- endif -%}
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook docs-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.site_header }}
<div class="docs-layout">
{{ resources.site_nav }}
<main class="docs-main">
{{ resources.page_head }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.page_foot }}
</main>
</div>
</body>
{% endblock body_footer %}
"""

_SITE_CSS = """
:root { --docs-nav-w: 16rem; --docs-accent: #2c6fbb; }
body.docs-page { margin: 0; padding: 0 !important; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.docs-header { position: sticky; top: 0; z-index: 1000; display: flex; align-items: center; gap: 1rem;
  background: var(--docs-accent); color: #fff; padding: .55rem 1.2rem; box-shadow: 0 1px 3px rgba(0,0,0,.2); }
.docs-header a { color: #fff; text-decoration: none; }
.docs-header .docs-title { font-weight: 600; font-size: 1.15rem; }
.docs-header .docs-repo { margin-left: auto; font-size: .9rem; opacity: .9; }
.docs-layout { display: flex; align-items: flex-start; }
.docs-nav { position: sticky; top: 2.8rem; flex: 0 0 var(--docs-nav-w); max-height: calc(100vh - 3rem); overflow-y: auto;
  padding: 1rem .8rem 2rem 1.2rem; box-sizing: border-box; font-size: .92rem; border-right: 1px solid #e3e3e3; }
.docs-nav .docs-section { margin: 1rem 0 .3rem; font-weight: 600; color: #555; font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
.docs-nav ul { list-style: none; margin: 0; padding: 0; }
.docs-nav li a { display: block; padding: .22rem .5rem; border-radius: 4px; color: #333; text-decoration: none; }
.docs-nav li a:hover { background: #eef3fa; }
.docs-nav li a.active { background: #e1ebf7; color: var(--docs-accent); font-weight: 600; }
.docs-main { flex: 1 1 auto; min-width: 0; max-width: 72rem; padding: 1rem 2rem 3rem; box-sizing: border-box; }
.docs-main .jp-Cell { padding-left: 0; padding-right: 0; }
.docs-page-title h1 { margin: .6rem 0 .2rem; font-size: 2rem; }
.docs-page-title .docs-description { color: #555; font-size: 1.1rem; margin: 0 0 1.2rem; }
.docs-pager { display: flex; justify-content: space-between; margin-top: 2.5rem; padding-top: 1rem; border-top: 1px solid #e3e3e3; }
.docs-pager a { color: var(--docs-accent); text-decoration: none; }
.docs-main .jp-InputPrompt, .docs-main .jp-OutputPrompt { display: none; }
.docs-main .jp-OutputArea-output pre { max-height: 30em; overflow: auto; }
.docs-main .plotly-graph-div { max-width: 100%; }
.docs-main .jp-InternalAnchorLink { visibility: hidden; margin-left: .3em; text-decoration: none; }
.docs-main :is(h1, h2, h3, h4, h5, h6):hover > .jp-InternalAnchorLink { visibility: visible; }
@media (max-width: 900px) {
  .docs-layout { display: block; }
  .docs-nav { position: static; max-height: none; border-right: 0; border-bottom: 1px solid #e3e3e3; }
  .docs-main { padding: 1rem; }
}
"""


def _nav_html(pages, titles: dict[str, str], current: str) -> str:
    cur = html_path(current)
    parts = ['<nav class="docs-nav" aria-label="Pages">']
    for sec, items in pages:
        if sec: parts.append(f'<div class="docs-section">{html.escape(str(sec))}</div>')
        parts.append("<ul>")
        for nb in items:
            active = ' class="active" aria-current="page"' if nb == current else ""
            parts.append(f'<li><a href="{rel_url(html_path(nb), cur)}"{active}>{html.escape(titles.get(nb, nb))}</a></li>')
        parts.append("</ul>")
    parts.append("</nav>")
    return "\n".join(parts)


_LINK = re.compile(r'(href=")(?![a-zA-Z][a-zA-Z0-9+.-]*:|//|#)([^"#?]*?)\.ipynb((?:[#?][^"]*)?")')


# Quarto markdown that nbconvert's renderer does not know, as nbdev writes it (show_doc's
# `[source](url){target="_blank" style="..."}` link, `::: {.callout-note}` fenced divs): turned into plain HTML
# so the offline page shows a link and a box instead of the raw attribute text.
_ATTR_LINK = re.compile(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^{}\n]*)\}')
_DIV_OPEN = re.compile(r'^:::+\s*\{([^}]*)\}\s*$|^:::+\s*([A-Za-z][\w-]*)\s*$')
_DIV_CLOSE = re.compile(r'^:::+\s*$')


def quarto_to_html(md: str) -> str:
    "Rewrite Quarto's attribute links and fenced divs in markdown `md` as HTML that any markdown renderer keeps."
    def link(m):
        attrs = m.group(3).strip()
        return f'<a href="{html.escape(m.group(2), quote=True)}" {attrs}>{m.group(1)}</a>'
    out = []
    for line in _ATTR_LINK.sub(link, md).split("\n"):
        o, c = _DIV_OPEN.match(line), _DIV_CLOSE.match(line)
        if o:
            spec = o.group(1) if o.group(1) is not None else "." + o.group(2)
            classes = " ".join(t[1:] for t in spec.split() if t.startswith("."))
            out += [f'<div class="{html.escape(classes)}">', ""]
        elif c: out += ["", "</div>"]
        else: out.append(line)
    return "\n".join(out)


def quarto_cells_to_html(nb) -> None:
    "Apply `quarto_to_html` to every markdown cell and every markdown output (show_doc) of `nb`, in place."
    for c in nb.cells:
        if c.cell_type == "markdown": c.source = quarto_to_html(c.source)
        for o in c.get("outputs", []):
            d = o.get("data", {})
            if "text/markdown" in d:
                v = d["text/markdown"]
                d["text/markdown"] = quarto_to_html(v if isinstance(v, str) else "".join(v))


def rewrite_links(h: str) -> str:
    "Relative links to notebooks point to their pages."
    return _LINK.sub(lambda m: f"{m.group(1)}{m.group(2)}.html{m.group(3)}", h)


def convert_one(nb_rel: str, proc: Path, out: Path, site: dict, pages, titles, mathjax_url: str | None) -> int:
    "Convert `_proc/nb_rel` to `out/<nb_rel>.html`. Returns the number of plotly figures."
    import nbformat, jinja2
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb = nbformat.read(proc / nb_rel, as_version=4)
    fm = split_frontmatter(nb)
    apply_cell_options(nb)
    quarto_cells_to_html(nb)
    nfig = render_plotly_outputs(nb)
    nb.metadata.pop("widgets", None)  # ipywidgets need a live kernel; the static page would only fetch their manager from a CDN
    title = str(fm.get("title") or titles.get(nb_rel) or nb_rel)
    nb.metadata["title"] = f"{title} – {site['title']}" if nb_rel != "index.ipynb" else site["title"]
    page = html_path(nb_rel)
    root = rel_url(".", page).rstrip("/") + "/"
    root = "" if root in ("./", "/") else root
    flat = [n for _, items in pages for n in items]
    i = flat.index(nb_rel) if nb_rel in flat else -1
    prev_nb = flat[i - 1] if i > 0 else None
    next_nb = flat[i + 1] if 0 <= i < len(flat) - 1 else None
    pager = '<nav class="docs-pager">'
    pager += (f'<a class="docs-prev" href="{rel_url(html_path(prev_nb), page)}">← {html.escape(titles.get(prev_nb, prev_nb))}</a>'
              if prev_nb else "<span></span>")
    pager += (f'<a class="docs-next" href="{rel_url(html_path(next_nb), page)}">{html.escape(titles.get(next_nb, next_nb))} →</a>'
              if next_nb else "<span></span>")
    pager += "</nav>"
    repo = f'<a class="docs-repo" href="{html.escape(site["repo"])}">GitHub</a>' if site.get("repo") else ""
    desc = fm.get("description")
    resources = {
        "metadata": {"name": title, "path": str((NBS / nb_rel).parent)},
        "site_root": root,
        "site_header": f'<header class="docs-header"><a class="docs-title" href="{root}index.html">{html.escape(site["title"])}</a>{repo}</header>',
        "site_nav": _nav_html(pages, titles, nb_rel),
        "page_head": (f'<header class="docs-page-title"><h1>{html.escape(title)}</h1>'
                      + (f'<p class="docs-description">{html.escape(str(desc))}</p>' if desc else "") + "</header>"),
        "page_foot": pager,
        "has_plotly": nfig > 0,
    }
    exporter = HTMLExporter(template_file="docs.html.j2", extra_loaders=[jinja2.DictLoader({"docs.html.j2": _TEMPLATE})],
                            exclude_input_prompt=True, exclude_output_prompt=True, anchor_link_text="¶")
    if mathjax_url is not None: exporter.mathjax_url = mathjax_url
    trp = TagRemovePreprocessor(remove_cell_tags={"remove_cell"}, remove_input_tags={"remove_input"},
                                remove_all_outputs_tags={"remove_output"}, enabled=True)
    exporter.register_preprocessor(trp, enabled=True)
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = rewrite_links(body)
    dst = out / page
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body, encoding="utf-8")
    return nfig


def _title_of(nb_path: Path) -> str | None:
    "The `# Title` of a notebook's first markdown cell (nbdev's front-matter convention)."
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        for c in nb.get("cells", []):
            src = "".join(c.get("source", []))
            if c.get("cell_type") == "raw" and "title:" in src:
                m = re.search(r"^title:\s*(.+)$", src, re.M)
                if m: return m.group(1).strip().strip("'\"")
            if c.get("cell_type") == "markdown":
                m = re.match(r"\s*#\s+(.+)", src)
                return m.group(1).strip() if m else None
    except Exception: return None
    return None


def write_assets(out: Path):
    import plotly, nbconvert
    from nbconvert import HTMLExporter
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    css = None
    for d in HTMLExporter(template_name="lab").template_paths:
        f = Path(d) / "static" / "index.css"
        if f.exists() and Path(d).name == "lab": css = f; break
    if css is None: raise FileNotFoundError("nbconvert's lab template static/index.css not found")
    parts = [css.read_text(encoding="utf-8")]
    light = css.parent / "theme-light.css"
    if light.exists(): parts.append(light.read_text(encoding="utf-8"))
    (assets / "notebook.css").write_text("\n".join(parts), encoding="utf-8")
    extra = NBS / "styles.css"
    (assets / "site.css").write_text(_SITE_CSS + ("\n" + extra.read_text() if extra.exists() else ""), encoding="utf-8")
    (out / ".nojekyll").write_text("")


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="_site", help="output folder (default: _site)")
    ap.add_argument("--only", default=None, metavar="GLOB", help="build only notebooks matching this glob (relative to nbs/, e.g. 'library/*')")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="notebooks executed at once (default: 2)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    ap.add_argument("--mathjax-url", default=None, help="MathJax script URL (default: nbconvert's CDN URL)")
    args = ap.parse_args(argv)

    os.chdir(ROOT)
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    # figures as plotly JSON only; the kernels and nbdev's processing workers inherit this
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # the kernels import this checkout's library even where it is not pip-installed
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # spawned nbdev workers copy sys.path

    t_start = time.time()
    site = site_config()
    notebooks = find_notebooks()
    pages = page_order(notebooks, site["groups"])
    titles = {nb: (_title_of(NBS / nb) or Path(nb).stem) for nb in notebooks}
    todo = [nb for nb in notebooks if not args.only or fnmatch.fnmatch(nb, args.only)]
    if not todo:
        log(f"no notebook matches {args.only!r}; notebooks: {', '.join(notebooks)}"); return 2
    log(f"building {len(todo)} notebook(s) into {out} with {args.jobs} job(s)")

    failures: dict[str, str] = {}
    timing: dict[str, float] = {}
    staging = Path(tempfile.mkdtemp(prefix="mosaiclab-docs-"))
    try:
        # 1. execute
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [ex.submit(execute_one, nb, staging, args.timeout) for nb in todo]
            for f in as_completed(futs):
                nb, dt, err = f.result()
                timing[nb] = dt
                if err: failures[nb] = f"execution: {err}"; log(f"  [exec] FAILED {nb} ({dt:.1f}s)")
                else: log(f"  [exec] ok     {nb} ({dt:.1f}s)")
        log(f"executed in {time.time() - t0:.1f}s")
        built = [nb for nb in todo if nb not in failures]
        for extra in ("_quarto.yml", "styles.css"):
            if (NBS / extra).exists(): shutil.copyfile(NBS / extra, staging / extra)

        # 2. nbdev processing
        t0 = time.time()
        proc, perr = nbdev_process(staging, built, args.jobs)
        for nb, e in perr.items():
            failures[nb] = f"nbdev processing: {e}"; log(f"  [proc] FAILED {nb}")
        built = [nb for nb in built if nb not in failures]
        log(f"nbdev processing ({len(built)} notebooks) in {time.time() - t0:.1f}s -> {proc.relative_to(ROOT) if proc.is_relative_to(ROOT) else proc}")

        # 3. convert
        t0 = time.time()
        out.mkdir(parents=True, exist_ok=True)
        write_assets(out)
        for nb in built:
            t1 = time.time()
            try:
                nfig = convert_one(nb, proc, out, site, pages, titles, args.mathjax_url)
                dt = time.time() - t1
                timing[nb] = timing.get(nb, 0) + dt
                log(f"  [html] ok     {html_path(nb)} ({nfig} figure{'s' * (nfig != 1)}, {dt:.1f}s)")
            except Exception as e:
                failures[nb] = f"conversion: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
                log(f"  [html] FAILED {nb}")
        log(f"converted in {time.time() - t0:.1f}s")
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.exists() else 0
    log("\nper notebook (execute + convert):")
    for nb in todo: log(f"  {timing.get(nb, 0):6.1f}s  {nb}{'  FAILED' if nb in failures else ''}")
    log(f"total {time.time() - t_start:.1f}s; {out} is {size / 1e6:.1f} MB")
    if failures:
        log(f"\n{len(failures)} notebook(s) failed:")
        for nb, err in failures.items():
            log(f"\n=== nbs/{nb}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
