"""The static docs site in a real browser: build it with scripts/build_docs.py, serve it, drive headless Chromium.

Per page: it loads without JavaScript errors or failed local requests; every plotly figure draws;
hovering a data point shows its tooltip; a slider step and a dropdown option change the figure.
Requests that leave 127.0.0.1 (MathJax's CDN) are blocked so the test is the same offline and online.

Set MOSAICLAB_DOCS_SITE=<folder> to test an already built site instead of building one.
Chromium: Debian's `chromium` (apt-get install -y chromium); without it the browser tests skip,
or fail when the CI environment variable is set.
"""
from __future__ import annotations

import functools, http.server, importlib.util, json, os, re, shutil, subprocess, sys, tempfile, threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _chromium import chromium_context

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
build_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_docs)

NOTEBOOKS = build_docs.find_notebooks()
PAGES = [build_docs.html_path(nb) for nb in NOTEBOOKS]
TIMEOUT_MS = 20_000


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    "The site folder and the build's (exit status, output)."
    given = os.environ.get("MOSAICLAB_DOCS_SITE")
    if given: return Path(given), 0, f"using prebuilt site {given}"
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_docs.py"), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    return out, r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="session")
def site(built_site):
    out, _, _ = built_site
    handler = functools.partial(_QuietHandler, directory=str(out))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield out, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown(); srv.server_close(); th.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def end_headers(self):
        self.send_header("Cache-Control", "max-age=3600")  # plotly.min.js is fetched and compiled once per run
        super().end_headers()


@pytest.fixture(scope="module")
def browser():
    # one context for the module: pages share the HTTP cache (plotly.min.js is 4.8 MB)
    with chromium_context({"width": 1280, "height": 900}, lambda ctx, r: _route(r),
                          "install it for the docs browser test (apt-get install -y chromium)") as ctx:
        yield ctx


def _local(url: str) -> bool: return urlparse(url).hostname in ("127.0.0.1", "localhost")


def _route(route):
    url = route.request.url
    if _local(url) or url.startswith(("data:", "blob:")): route.continue_()
    else: route.abort()  # the CDN's MathJax: offline and online runs must behave the same


class Page:
    "A loaded docs page and everything that went wrong while loading and using it."
    def __init__(self, ctx, base: str, path: str):
        self.base, self.path, self.errors, self.failed = base, path, [], []
        self.page = ctx.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", self._console)
        self.page.on("requestfailed", lambda r: self._local(r.url) and self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("response", lambda r: self._local(r.url) and r.status >= 400 and self.failed.append(f"{r.url}: HTTP {r.status}"))
        self.page.goto(base + path, wait_until="load")

    @staticmethod
    def _local(url: str) -> bool: return _local(url)

    def _console(self, msg):
        if msg.type != "error": return
        url = (msg.location or {}).get("url", "")
        if url and not self._local(url): return  # a blocked external resource
        if "Failed to load resource" in msg.text and not url: return  # reported by requestfailed if local
        self.errors.append(f"console: {msg.text} ({url})")

    def close(self): self.page.close()

    def figures(self) -> int:
        "Wait for plotly and for every figure to be drawn; return the number of figures."
        n = self.page.locator(".plotly-graph-div").count()
        if n:
            self.page.wait_for_function("() => !!window.Plotly", timeout=TIMEOUT_MS)
            self.page.wait_for_function("""() => [...document.querySelectorAll('.plotly-graph-div')].every(
                gd => gd._fullLayout && gd.querySelector('svg.main-svg') && gd.querySelector('.cartesianlayer, .polarlayer, .pielayer, .geolayer, .ternarylayer, .gl-container, .scene'))""",
                timeout=TIMEOUT_MS)
        return n


@pytest.fixture(scope="class", params=PAGES)
def page(request, site, browser, built_site):
    "Each page is loaded once; the checks of `TestPage` run on it in order (loading a page with figures costs ~3 s)."
    out, base = site
    path = request.param
    if not (out / path).exists():
        _, rc, log = built_site
        pytest.fail(f"{path} was not built (build exit status {rc}):\n{log[-6000:]}")
    p = Page(browser, base, path)
    yield p
    p.close()


def _need_figures(p: Page, selector_js: str = "gd => true", what: str = "plotly figure") -> list[int]:
    n = p.figures()
    idx = p.page.evaluate(f"""() => [...document.querySelectorAll('.plotly-graph-div')]
        .map((gd, i) => [i, ({selector_js})(gd)]).filter(x => x[1]).map(x => x[0])""") if n else []
    if not idx: pytest.skip(f"{p.path} has no {what}")
    return idx


# -------------------------------------------------------------------------------------- tests
def test_build(built_site):
    out, rc, log = built_site
    summary = [l for l in log.splitlines() if "FAILED" in l or l.startswith("=== nbs/") or l.startswith("total ")]
    assert rc == 0, f"scripts/build_docs.py failed (exit {rc}):\n" + "\n".join(summary) + f"\n\n{log[-6000:]}"
    assert (out / "index.html").exists()
    assert (out / "assets" / "plotly.min.js").exists()


def test_plotly_js_once(built_site):
    "plotly.js is shipped once, never inlined in a page."
    out, _, _ = built_site
    for f in out.rglob("*.html"):
        h = f.read_text(encoding="utf-8")
        assert len(h) < 2_000_000 and "plotly.js v" not in h, f"{f.name} embeds plotly.js"
        if "Plotly.newPlot" in h: assert "assets/plotly.min.js" in h, f"{f.name} draws figures without loading plotly.js"


@pytest.mark.parametrize("path", PAGES)
def test_nav_links_resolve(site, built_site, path):
    "Every sidebar and pager link points at a page that exists."
    out, _ = site
    f = out / path
    if not f.exists(): pytest.fail(f"{path} was not built:\n{built_site[2][-4000:]}")
    h = f.read_text(encoding="utf-8")
    nav = re.findall(r'<nav class="docs-(?:nav|pager)".*?</nav>', h, re.S)
    hrefs = [u for block in nav for u in re.findall(r'href="([^"#]+)', block)]
    assert hrefs
    missing = [u for u in hrefs if not (f.parent / u).resolve().exists()]
    assert not missing, f"broken navigation links: {missing}"


_POINT_JS = """(gd) => {
    // where to hover: the centre of the biggest drawn point (bar, marker), else the middle data point
    // of the first visible trace (lines), else the centre of the plot area (heatmaps)
    gd.scrollIntoView({block: 'center'});
    const pts = [...gd.querySelectorAll('.cartesianlayer .trace .point')].map(e => e.getBoundingClientRect())
        .filter(r => r.width * r.height > 0);
    if (pts.length) {
        const big = Math.max(...pts.map(r => r.width * r.height));
        const cands = pts.filter(r => r.width * r.height >= big * 0.999), r = cands[Math.floor(cands.length / 2)];
        return {x: r.left + r.width / 2, y: r.top + r.height / 2};
    }
    const fl = gd._fullLayout, box = gd.querySelector('svg.main-svg').getBoundingClientRect();
    const trace = (gd._fullData || []).find(t => t.visible === true) || {};
    const xa = fl[(trace.xaxis || 'x').replace('x', 'xaxis')], ya = fl[(trace.yaxis || 'y').replace('y', 'yaxis')];
    if (!xa || !ya) return {x: box.left + box.width / 2, y: box.top + box.height / 2};
    const xs = trace.x, ys = trace.y;
    if (xs && ys && xs.length && ys.length && trace.type === 'scatter') {
        const i = Math.floor(Math.min(xs.length, ys.length) / 2);
        return {x: box.left + xa._offset + xa.c2p(xa.d2c(xs[i])), y: box.top + ya._offset + ya.c2p(ya.d2c(ys[i]))};
    }
    return {x: box.left + xa._offset + xa._length / 2, y: box.top + ya._offset + ya._length / 2};
}"""


_STATE_JS = "gd => JSON.stringify([gd.data.map(t => t.visible), (gd.layout.title || {}).text || gd.layout.title || ''])"


class TestPage:
    "Per page, in this order: loads cleanly, figures draw, hover, slider, dropdown."

    def test_page_loads(self, page):
        p = page
        p.figures()
        assert p.page.locator(".docs-nav a").count() >= 1, "no navigation sidebar"
        assert p.page.locator(".docs-nav a.active").count() == 1, "the current page is not marked in the sidebar"
        links = p.page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
        assert not [l for l in links if l.endswith(".ipynb") or ".ipynb#" in l], "links to .ipynb left"
        p.page.wait_for_timeout(200)
        assert not p.errors, "JavaScript errors:\n" + "\n".join(p.errors)
        assert not p.failed, "failed local requests:\n" + "\n".join(p.failed)
        text = p.page.inner_text("body")
        raw = [l.strip() for l in text.splitlines() if "{target=" in l or l.strip().startswith(":::")]
        assert not raw, "raw Quarto markup shown on the page:\n" + "\n".join(raw[:5])

    def test_figures_draw(self, page):
        p, n0 = page, len(page.errors)  # only errors from this check
        _need_figures(p)
        empty = p.page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map((gd, i) => {
            const svg = gd.querySelector('svg.main-svg'), r = gd.getBoundingClientRect();
            const drawn = svg && svg.querySelectorAll('path, rect, text').length > 3 && r.width > 50 && r.height > 50;
            const traces = (gd._fullData || []).filter(t => t.visible === true).length;
            return drawn && traces > 0 ? null : i; }).filter(i => i !== null)""")
        assert not empty, f"figures not drawn (index on page): {empty}"
        assert not p.errors[n0:], "JavaScript errors:\n" + "\n".join(p.errors[n0:])

    def test_hover_tooltip(self, page):
        p, n0 = page, len(page.errors)  # only errors from this check
        idx = _need_figures(p, "gd => gd._fullLayout.hovermode !== false")
        bad = []
        for i in idx:
            gd = p.page.locator(".plotly-graph-div").nth(i)
            pt = gd.evaluate(_POINT_JS)
            p.page.mouse.move(1, 1)
            p.page.mouse.move(pt["x"], pt["y"], steps=4)
            try:  # 'x unified' hover draws a legend-like box instead of .hovertext
                gd.locator(".hoverlayer .hovertext, .hoverlayer .legend").first.wait_for(state="attached", timeout=5000)
            except Exception:
                bad.append(i)
        assert not bad, f"no hover tooltip on figures {bad} of {p.path}"
        assert not p.errors[n0:], "JavaScript errors:\n" + "\n".join(p.errors[n0:])

    def test_slider_changes_figure(self, page):
        p, n0 = page, len(page.errors)  # only errors from this check
        idx = _need_figures(p, "gd => (gd.layout.sliders || []).some(s => (s.steps || []).length > 1)", "figure with a slider")
        for i in idx:
            gd = p.page.locator(".plotly-graph-div").nth(i)
            gd.scroll_into_view_if_needed()
            before = gd.evaluate(_STATE_JS)
            n, active = gd.evaluate("gd => [gd.layout.sliders[0].steps.length, gd.layout.sliders[0].active || 0]")
            target = n - 1 if active != n - 1 else 0
            rail = gd.locator(".slider-container .slider-rail-touch-rect").first
            box = rail.bounding_box()
            assert box, "slider rail not drawn"
            # the steps are spread evenly along the rail; its ends are the first and last step
            x = box["x"] + (box["width"] - 4 if target else 4)
            p.page.mouse.click(x, box["y"] + box["height"] / 2)
            p.page.wait_for_function(f"""() => {{ const gd = document.querySelectorAll('.plotly-graph-div')[{i}];
                return ({_STATE_JS})(gd) !== {json.dumps(before)}; }}""", timeout=5000)
            assert gd.evaluate("gd => gd._fullLayout.sliders[0].active") == target
            vis = gd.evaluate("gd => gd._fullData.filter(t => t.visible === true).length")
            assert vis >= 1, "no trace visible after the slider step"
        assert not p.errors[n0:], "JavaScript errors:\n" + "\n".join(p.errors[n0:])

    def test_dropdown_changes_figure(self, page):
        p, n0 = page, len(page.errors)  # only errors from this check
        idx = _need_figures(p, "gd => (gd.layout.updatemenus || []).some(m => (m.type || 'dropdown') === 'dropdown' && (m.buttons || []).length > 1)",
                            "figure with a dropdown")
        for i in idx:
            gd = p.page.locator(".plotly-graph-div").nth(i)
            gd.scroll_into_view_if_needed()
            before = gd.evaluate(_STATE_JS)
            gd.locator(".updatemenu-container .updatemenu-header-group").first.click()
            opts = gd.locator(".updatemenu-container .updatemenu-dropdown-button")
            opts.first.wait_for(state="visible", timeout=5000)
            active = gd.evaluate("gd => gd._fullLayout.updatemenus[0].active || 0")
            opts.nth(1 if active == 0 else 0).click()
            p.page.wait_for_function(f"""() => {{ const gd = document.querySelectorAll('.plotly-graph-div')[{i}];
                return ({_STATE_JS})(gd) !== {json.dumps(before)}; }}""", timeout=5000)
            assert gd.evaluate("gd => gd._fullData.filter(t => t.visible === true).length") >= 1
        assert not p.errors[n0:], "JavaScript errors:\n" + "\n".join(p.errors[n0:])


def test_quarto_markup_becomes_html():
    "show_doc's attribute link and fenced divs are rewritten, other markdown is left as it is."
    md = ('[source](https://x.org/a.py#L3){target="_blank" style="float:right; font-size:smaller"}\n\n'
          '::: {.callout-note}\nA note.\n:::\n\nplain [link](b.ipynb) and `{code}`')
    h = build_docs.quarto_to_html(md)
    assert '<a href="https://x.org/a.py#L3" target="_blank" style="float:right; font-size:smaller">source</a>' in h
    assert "{target=" not in h and ":::" not in h and '<div class="callout-note">' in h and "</div>" in h
    assert "plain [link](b.ipynb) and `{code}`" in h
