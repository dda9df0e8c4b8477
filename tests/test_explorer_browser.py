"""The cloze explorer in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Opens ``notebooks/cloze_explorer.ipynb`` (a copy in a temporary directory), runs every cell, clicks a word
button to mask it and waits for its prediction and the redrawn heatmap. A screenshot is kept in the test's
temporary directory and copied to ``test-artifacts/cloze_explorer.png``.

Needs the Python package ``playwright`` and a Chromium binary (Debian's ``chromium`` package); the test is
skipped, saying which is missing, without them. Playwright's own browser download is never used.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "cloze_explorer.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    explicit = os.environ.get("ALLINONE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def jupyter_lab(tmp_path):
    """JupyterLab serving a copy of the explorer notebook on a free localhost port, with a token."""
    pytest.importorskip("playwright.sync_api", reason="the browser test needs `pip install playwright`")
    if chromium_binary() is None:
        pytest.skip("the browser test needs Chromium (Debian: `apt-get install -y chromium`)")
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(  # no "get notified about news" pop-up over the page
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = open(tmp_path / "jupyter.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            log.close()
            pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield {"url": url, "token": token, "root": root}
    finally:
        server.send_signal(signal.SIGTERM)  # shuts the kernels down too
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_explorer_runs_in_jupyterlab_and_a_click_masks_a_word(jupyter_lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    start = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_binary(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(120_000)
            page.goto(f"{jupyter_lab['url']}/lab/tree/{NOTEBOOK.name}?token={jupyter_lab['token']}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            words = page.locator(".cloze-explorer .cloze-word")
            expect(words.first).to_be_visible()
            table = page.locator(".cloze-predictions table.cloze-table")
            expect(table).to_be_visible()
            heatmap = page.locator("img.cloze-heatmap")
            expect(heatmap).to_be_visible()
            masked_before = page.locator(".cloze-predictions tr.cloze-row").count()
            assert masked_before == page.locator(".cloze-explorer .cloze-word.mod-active").count() > 0
            src_before = heatmap.get_attribute("src")

            index = next(i for i in range(words.count()) if words.nth(i).get_attribute("title") == "adjective"
                         and "mod-active" not in (words.nth(i).get_attribute("class") or ""))
            target = words.nth(index)
            word = target.inner_text().strip()
            target.click()  # a real click: mask the word

            expect(target).to_have_class(re.compile(r"\bmod-active\b"))
            expect(page.locator(".cloze-predictions tr.cloze-row td:first-child", has_text=word).first).to_be_visible()
            expect(page.locator(".cloze-predictions tr.cloze-row")).to_have_count(masked_before + 1)
            page.wait_for_function(
                "([old]) => { const img = document.querySelector('img.cloze-heatmap');"
                " return img && img.src !== old && img.complete && img.naturalWidth > 0; }", arg=[src_before])
            assert page.locator(".cloze-error").count() == 0
            prediction = page.locator(".cloze-predictions tr.cloze-row", has_text=word).first.inner_text()
            assert word in prediction
            heatmap.scroll_into_view_if_needed()
            shot = tmp_path / "cloze_explorer.png"
            page.locator(".cloze-explorer").screenshot(path=str(shot))
            page.screenshot(path=str(tmp_path / "cloze_explorer_page.png"))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("cloze_explorer.png", "cloze_explorer_page.png"):
        shutil.copy(tmp_path / name, ARTIFACTS / name)
    print(f"browser test: {time.monotonic() - start:.1f} s after JupyterLab started; screenshots in {ARTIFACTS}")
