"""The live book in a real JupyterLab: start it headless on localhost, open Part I chapters in Chromium, run every cell.

- The ALiBi chapter's live explorer (`alibi_explorer(static=False)`: ipywidgets sliders over a plotly FigureWidget,
  drawn through anywidget) shows lines inside the widget, and moving its head-count slider with the keyboard
  redraws the figure (two traces per head, new data).
- The pretraining chapter's device cell picks CUDA when torch sees a GPU and says it runs on the CPU otherwise.

The chapters are copied into a temporary root, so JupyterLab's autosave never writes outputs into nbs/.
Requests that leave 127.0.0.1 are blocked in the browser and the server is started with announcements, update
checks and the extension manager off, so the test is the same offline and online.
Needs jupyterlab, playwright and Debian's `chromium` (apt-get install -y chromium; never `playwright install`):
without them the test skips, or fails when the CI environment variable is set.
"""
from __future__ import annotations

import importlib.util, json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _chromium import missing, chromium_context

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ("mosaicbert/02_alibi.ipynb", "mosaicbert/09_pretraining.ipynb")
TIMEOUT_MS = 60_000      # one UI step: the app loading, a widget drawing (a 2-core machine under load is slow)
RUN_ALL_S = 240          # running a whole chapter


def _missing(reason: str): missing(reason, "the JupyterLab browser test needs it (scripts/setup.sh --dev installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a copy of the chapters: yields its base URL, token and log file."
    for mod in ("jupyterlab", "ipykernel", "ipywidgets", "anywidget"):
        if importlib.util.find_spec(mod) is None: _missing(f"{mod} is not installed")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "root"
    for nb in CHAPTERS:
        (root / nb).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "nbs" / nb, root / nb)
    port, token = _free_port(), secrets.token_hex(16)
    # its own config, data and runtime folders: nothing from the user's ~/.jupyter; the kernel imports this checkout
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False",
           "--ServerApp.jpserver_extensions={'jupyter_lsp': False, 'jupyter_server_terminals': False}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={tmp / 'settings'}"]
    log = tmp / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None: pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline: pytest.fail(f"jupyter lab did not answer in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base, token, log
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(5)


def _local_only(ctx, r):
    "Let requests to this machine through; record and abort every other (the test checks nothing went out)."
    url = r.request.url
    if urlparse(url).hostname in ("127.0.0.1", "localhost") or url.startswith(("data:", "blob:")): r.continue_()
    else: ctx.blocked.append(url); r.abort()

@pytest.fixture(scope="module")
def browser():
    with chromium_context({"width": 1400, "height": 1000}, _local_only,
                          "the JupyterLab browser test needs it (scripts/setup.sh --dev installs it)") as ctx:
        ctx.blocked = []
        yield ctx


# ------------------------------------------------------------------------------------ driving JupyterLab
_NOTEBOOK = "window.jupyterapp.shell.currentWidget"

class Notebook:
    "One chapter open in JupyterLab, driven through the app's own commands and read through its notebook model."
    def __init__(self, ctx, lab, path: str):
        base, token, _ = lab
        self.errors = []
        self.page = ctx.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(f"{base}/lab/tree/{path}?token={token}")
        self.page.wait_for_function(f"""() => window.jupyterapp && {_NOTEBOOK} && {_NOTEBOOK}.context
            && {_NOTEBOOK}.context.path === {json.dumps(path)} && {_NOTEBOOK}.sessionContext.session?.kernel""")
        self.wait_idle()

    def wait_idle(self, timeout_ms: int = TIMEOUT_MS):
        self.page.wait_for_function(f"() => {_NOTEBOOK}.sessionContext.session.kernel.status === 'idle'", timeout=timeout_ms)

    def run_all(self) -> float:
        "Run > Run All Cells; wait until the kernel has run the last cell. Returns the seconds it took."
        assert self.page.evaluate("() => window.jupyterapp.commands.hasCommand('notebook:run-all-cells')")
        t0 = time.time()
        # the command's promise settles when the last cell has run (or one failed)
        self.page.evaluate(f"""() => Promise.race([window.jupyterapp.commands.execute('notebook:run-all-cells'),
                                                   new Promise((_, no) => setTimeout(() => no(new Error('run all: timed out')), {RUN_ALL_S * 1000}))])""")
        self.wait_idle()
        return time.time() - t0

    def cells(self) -> list[dict]:
        "Every cell of the model: type, source, execution count, outputs (nbformat JSON)."
        return self.page.evaluate(f"() => {_NOTEBOOK}.content.model.toJSON().cells")

    def output_text(self, cell: dict) -> str:
        out = []
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream": out.append("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
            elif "data" in o and "text/plain" in o["data"]:
                t = o["data"]["text/plain"]; out.append("".join(t) if isinstance(t, list) else t)
        return "".join(out)

    def check_ran(self) -> list[dict]:
        "Every code cell ran (an execution count) and none raised: the cells, for further checks."
        cells = self.cells()
        failed = [(c["source"] if isinstance(c["source"], str) else "".join(c["source"]), o)
                  for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not failed, "cells raised:\n" + "\n".join(f"{s[:200]}\n  {o['ename']}: {o['evalue']}" for s, o in failed)
        unrun = [c["source"] for c in cells if c["cell_type"] == "code" and c.get("execution_count") is None]
        assert not unrun, f"{len(unrun)} code cells did not run, the first: {unrun[0]!r:.300}"
        assert not self.errors, self.errors
        return cells

    def cell_index(self, needle: str) -> int:
        "The index of the one cell whose source contains `needle`."
        hits = [i for i, c in enumerate(self.cells()) if needle in (c["source"] if isinstance(c["source"], str) else "".join(c["source"]))]
        assert len(hits) == 1, f"{len(hits)} cells contain {needle!r}"
        return hits[0]

    def output_area(self, index: int):
        "The output area of cell `index`, scrolled into view (the notebook renders only the cells near the view)."
        self.page.evaluate(f"""async i => {{
            const nb = {_NOTEBOOK}.content;
            nb.activeCellIndex = i;
            await nb.scrollToItem(i, 'center');
            nb.widgets[i].node.setAttribute('data-test-cell', String(i)); }}""", index)
        area = self.page.locator(f'.jp-Notebook .jp-Cell[data-test-cell="{index}"] .jp-OutputArea')
        area.wait_for(state="visible")
        return area

    def close(self): self.page.close()


# JSON of what a plotly graph div draws: its traces' data, and the SVG paths of its lines
_FIGURE_STATE = """gd => ({traces: (gd.data || []).map(t => ({x: Array.from(t.x || []), y: Array.from(t.y || [])})),
                          paths: [...gd.querySelectorAll('.scatterlayer path.js-line')].map(p => p.getAttribute('d') || '')})"""


def _lines(state: dict) -> int:
    "How many line paths are drawn (not empty)."
    return sum(1 for d in state["paths"] if d and d != "M0,0")


def _drawn(state: dict) -> bool:
    "Data inside the axes, not empty axes: traces with points, and line paths drawn."
    return any(len(t["x"]) > 1 for t in state["traces"]) and _lines(state) > 0


def _value(slider) -> int:
    "An IntSlider's value, as its readout shows it."
    return int(slider.locator(".widget-readout").inner_text())


def _press(slider, key: str) -> int:
    "Focus the slider's handle, press `key` as a reader would, and return the new value once the readout shows it."
    old = _value(slider)
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press(key)
    deadline = time.time() + TIMEOUT_MS / 1000
    while _value(slider) == old:
        assert time.time() < deadline, f"pressing {key} on the slider left it at {old}"
        time.sleep(0.2)
    return _value(slider)


def _wait_drawn(plot, timeout_s: float = TIMEOUT_MS / 1000) -> dict:
    "The figure's state once it is drawn, or its last state after `timeout_s` (widgets draw asynchronously)."
    deadline = time.time() + timeout_s
    while True:
        state = plot.evaluate(_FIGURE_STATE)
        if _drawn(state) or time.time() > deadline: return state
        time.sleep(0.5)


# ------------------------------------------------------------------------------------ the tests
def test_alibi_live_explorer(lab, browser):
    nb = Notebook(browser, lab, CHAPTERS[0])
    try:
        seconds = nb.run_all()
        print(f"{CHAPTERS[0]}: run all in {seconds:.0f} s")
        nb.check_ran()
        area = nb.output_area(nb.cell_index("alibi_explorer(static=False)"))
        widget = area.locator(".widget-vbox").first
        widget.wait_for(state="attached")
        plot = widget.locator(".js-plotly-plot").first
        plot.wait_for(state="attached")
        plot.scroll_into_view_if_needed()
        before = _wait_drawn(plot)
        assert _drawn(before), f"the FigureWidget drew empty axes after {seconds:.0f} s: {json.dumps(before)[:500]}"

        sliders = widget.locator(".widget-slider")
        heads, length = (sliders.filter(has_text=label).first for label in ("heads", "length"))
        n_heads, seq_len = _value(heads), _value(length)
        assert len(before["traces"]) == _lines(before) == 2 * n_heads, \
            f"{len(before['traces'])} traces, {_lines(before)} lines drawn for {n_heads} heads"  # a bias line and a reach curve per head
        assert {t["x"][-1] for t in before["traces"]} == {seq_len - 1}   # every line reaches the longest distance, T - 1
        info = widget.locator(".widget-html").first.inner_text()

        # one more head: two more lines drawn
        assert _press(heads, "ArrowRight") == n_heads + 1
        nb.page.wait_for_function("([gd, n]) => (gd.data || []).length === n", arg=[plot.element_handle(), 2 * (n_heads + 1)])
        nb.wait_idle()
        more = plot.evaluate(_FIGURE_STATE)
        assert _drawn(more) and len(more["traces"]) == _lines(more) == 2 * (n_heads + 1)
        assert any(t not in before["traces"] for t in more["traces"]), "no new data drawn for the new head"
        assert widget.locator(".widget-html").first.inner_text() != info, "the explorer's text line did not follow the slider"

        # a longer sequence: every line is redrawn to the new length
        longer = _press(length, "ArrowRight")
        assert longer > seq_len
        nb.page.wait_for_function("([gd, last]) => (gd.data || []).every(t => Array.from(t.x).at(-1) === last)",
                                  arg=[plot.element_handle(), longer - 1])
        nb.wait_idle()
        after = plot.evaluate(_FIGURE_STATE)
        assert _drawn(after) and len(after["traces"]) == _lines(after) == 2 * (n_heads + 1)
        assert all(a != m for a, m in zip(after["traces"], more["traces"])), "some lines did not follow the length slider"
        # (on autoscaled axes a line spanning the whole plot keeps its pixels, so not every path need move)
        assert after["paths"] != more["paths"], "the drawn lines did not change"
        assert not nb.errors, nb.errors
        assert not browser.blocked, f"the page asked for something outside 127.0.0.1: {browser.blocked[:5]}"
    finally:
        nb.close()


def test_device_cell_says_cpu_or_gpu(lab, browser):
    import torch
    nb = Notebook(browser, lab, CHAPTERS[1])
    try:
        seconds = nb.run_all()
        print(f"{CHAPTERS[1]}: run all in {seconds:.0f} s")
        cells = nb.check_ran()
        i = nb.cell_index("setup_distributed().device")
        text = nb.output_text(cells[i])
        shown = nb.output_area(i).inner_text()
        assert "pretrain() runs here on" in text and text.strip() in shown, (text, shown)
        if torch.cuda.is_available():
            assert torch.cuda.get_device_name(0) in text, text
        else:
            assert "the CPU" in text, text
        assert not browser.blocked, f"the page asked for something outside 127.0.0.1: {browser.blocked[:5]}"
    finally:
        nb.close()

