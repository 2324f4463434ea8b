"""The course in a real browser: JupyterLab on 127.0.0.1 driven through Playwright in Debian's
Chromium, and the built book opened from disk with the network blocked.

For each chapter with an explorer: open it in JupyterLab, run all cells, check that the explorer
renders as a widget (not its text fallback), move one of its controls and wait for its picture
to change (the time it took is printed), check that the worked solutions are folded until
opened, and save a screenshot. Then open a page of the book from disk, every request that would
leave the machine refused and recorded, and check that maths, a figure and a widget render and
that nothing was requested from outside.

Skipped, with the reason, where Chromium (``apt-get install chromium``; never
``playwright install``, which downloads a browser) or the ``playwright`` package is missing.
Screenshots go to ``$MMCOURSE_SCREENSHOTS`` (default ``build/screenshots/``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("MMCOURSE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("MMCOURSE_SCREENSHOTS", ROOT / "build" / "screenshots"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RUN_ALL_SECONDS = 300  # chapter 02 runs whole in about 10 s; an explorer notebook in 30 s
RUN_ALL_CHAPTER = "02_joint_representation.ipynb"  # run whole: about 10 s, three solutions

# chapter -> the explorer cell's id and how to move one of its controls. The explorer cell runs
# in a notebook of two cells: a quick set-up that makes the names it uses (small data, the
# committed weights, untrained models where the time does not depend on what they learned),
# then the chapter's own cell, copied. nbval runs the chapters themselves.
EXPLORERS = {
    "01_concepts.ipynb": ("shared-space-explorer", "slider"),
    "06_fusion.ipynb": ("fusion-explorer", ("select", 0, "concat")),
    "10_decoders_beam_transfer.ipynb": ("caption-explorer", ("select", 2, "thick")),
    "11_retrieval_zero_shot.ipynb": ("retrieval-explorer", ("text", "a small two")),
    "13_robustness.ipynb": ("severity-explorer", "slider"),
}

SETUP = {
    "01_concepts.ipynb": """
import torch
from mmcourse import config
settings = config.setup(seed=0)
from mmcourse.data import mnist
all_digits, labels = mnist.load_digits("train")
train_x, train_labels = mnist.to_float(all_digits[:2000]), labels[:2000]
val_index = torch.arange(2000, 2500)
val_x, val_labels = mnist.to_float(all_digits[val_index]), labels[val_index]
""",
    "06_fusion.ipynb": """
from types import SimpleNamespace
import torch
from mmcourse import config, fusion_study
settings = config.setup(seed=0)
from mmcourse.data import questions
from mmcourse.data.captions import make_mnist_captions
from mmcourse.models.vqa import CanvasBackbone
test_data = make_mnist_captions("test", n=200)
train_qa = questions.make_vqa(test_data)
torch.manual_seed(0)
backbone = CanvasBackbone().eval()
models = {name: fusion_study.build_vqa_model(make(backbone), len(train_qa.vocab), backbone)
          for name, make in fusion_study.FUSIONS.items()}
study = SimpleNamespace(regions={"test": backbone.store_regions(test_data.float_images())})
canvas = 3
""",
    "10_decoders_beam_transfer.ipynb": """
from types import SimpleNamespace
import torch
from mmcourse import config
settings = config.setup(seed=0)
from mmcourse.casestudy import pretrained
from mmcourse.data.captions import make_mnist_captions
vocab = pretrained.vocabulary()
data = SimpleNamespace(vocab=vocab, splits={"test": make_mnist_captions("test", n=300)})
decoders = {"attention": pretrained.load_decoder("attention", vocab)}
""",
    "11_retrieval_zero_shot.ipynb": """
from types import SimpleNamespace
from mmcourse import config
settings = config.setup(seed=0)
from mmcourse.casestudy import pretrained
from mmcourse.data import mnist
from mmcourse.data.captions import make_mnist_captions
vocab = pretrained.vocabulary()
data = SimpleNamespace(vocab=vocab, splits={"test": make_mnist_captions("test", n=300)})
committed = pretrained.load_dual_encoder(vocab)
digits, labels = mnist.load_digits("test")
""",
    "13_robustness.ipynb": """
import torch
from mmcourse import config, fusion_study
settings = config.setup(seed=0)
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.questions import make_vqa
from mmcourse.explorers.corruption_explorer import KINDS
from mmcourse.models.vqa import CanvasBackbone
splits = {"test": make_mnist_captions("test", n=100)}
test_qa = make_vqa(splits["test"])
torch.manual_seed(0)
backbone = CanvasBackbone().eval().requires_grad_(False)
models = {name: fusion_study.build_vqa_model(fusion_study.FUSIONS[name](backbone),
                                             len(test_qa.vocab), backbone)
          for name in ("image only", "question only", "concat", "product")}
curves = {kind: [{name: 0.5 for name in models} for _ in range(6)] for kind in KINDS}
""",
}


def explorer_notebook(name: str) -> nbformat.NotebookNode:
    """The quick set-up of ``name``'s explorer, then the chapter's explorer cell itself."""
    chapter = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cell_id = EXPLORERS[name][0]
    explorer = next(cell for cell in chapter.cells if cell.get("id") == cell_id)
    notebook = nbformat.v4.new_notebook(metadata=chapter.metadata)
    notebook.cells = [nbformat.v4.new_code_cell(SETUP[name].strip()), explorer]
    return notebook


try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,  # JupyterLab and Chromium, minutes: not in `course.py test --quick`
    pytest.mark.skipif(
        sync_playwright is None, reason="the playwright package is not installed (test extra)"
    ),
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_settings(folder: Path) -> None:
    """JupyterLab user settings for a test: no news or update pop-ups over the page, and every
    cell kept in the page (no windowing), so any cell can be found."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, values in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on 127.0.0.1 serving copies of the chapters; yields its base URL
    (with the token) and the folder."""
    work = tmp_path_factory.mktemp("lab")
    notebooks = work / "notebooks"
    notebooks.mkdir()
    for name in [*EXPLORERS, RUN_ALL_CHAPTER]:
        shutil.copy(ROOT / "notebooks" / name, notebooks / name)
    for name in EXPLORERS:
        nbformat.write(explorer_notebook(name), notebooks / f"explore_{name}")
    lab_settings(work / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(work / "config"))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(work / "settings")
    env["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")
    log = (work / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
            "--LabApp.news_url=", "--ServerApp.open_browser=False",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        cwd=notebooks, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (work / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        # each chapter in a workspace of its own, so no tab of an earlier test is restored
        yield f"{base}/lab/workspaces/{{workspace}}/tree/{{name}}?token={token}", notebooks
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def solution_indices(name: str) -> list[int]:
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return [i for i, c in enumerate(notebook.cells) if "solution" in c.metadata.get("tags", [])]


def explorer_picture(page: Page, cell: object) -> str:
    """The ``src`` of the explorer's picture (a blob URL that changes with the picture)."""
    image = cell.locator("img.widget-image").first
    image.wait_for(state="visible", timeout=60_000)
    return image.get_attribute("src") or ""


def move_control(cell: object, how: object) -> None:
    if how == "slider":
        handle = cell.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
    elif how[0] == "select":
        cell.locator(".widget-dropdown select").nth(how[1]).select_option(how[2])
    elif how[0] == "text":
        box = cell.locator(".widget-text input").first
        box.fill(how[1])
        box.press("Enter")


def open_notebook(page: Page, url: str, workspace: str, name: str) -> object:
    """Open ``name`` in JupyterLab and wait for its kernel; return its panel."""
    page.goto(url.format(workspace=workspace, name=name))
    panel = page.locator(".jp-NotebookPanel:visible").first
    panel.locator(".jp-Notebook").wait_for(timeout=120_000)
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        state="attached", timeout=120_000
    )
    return panel


def run_all(page: Page, panel: object) -> None:
    """Run All Cells from the menu, with the notebook focused; again if no cell started."""
    for _ in range(3):
        panel.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
        page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()
        started = panel.locator(".jp-InputPrompt").first
        try:
            page.wait_for_function(
                "cell => cell.textContent.trim() !== '[ ]:'",
                arg=started.element_handle(),
                timeout=20_000,
            )
            return
        except Exception:
            continue
    raise AssertionError("Run All Cells did not start the notebook")


def stop_kernels(url: str) -> None:
    """Shut down every kernel of the test server (a closed page leaves its kernel running)."""
    base, token = url.split("/lab/")[0], url.split("token=")[1]
    kernels = json.load(urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10))
    for kernel in kernels:
        request = urllib.request.Request(
            f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE"
        )
        urllib.request.urlopen(request, timeout=30)


@pytest.mark.parametrize("name", list(EXPLORERS), ids=[n[:2] for n in EXPLORERS])
def test_a_chapter_opens_with_its_solutions_folded(
    name: str, lab: tuple[str, Path], browser: object
) -> None:
    """Fresh, every worked solution of the chapter is folded; one click opens it."""
    url, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        panel = open_notebook(page, url, f"chapter{name[:2]}", name)
        cells = panel.locator(".jp-Notebook .jp-Cell")
        total = len(nbformat.read(ROOT / "notebooks" / name, as_version=4).cells)
        cells.nth(total - 1).wait_for(state="attached", timeout=60_000)
        for index in solution_indices(name):  # cells render progressively: wait for each
            cell = cells.nth(index)
            cell.scroll_into_view_if_needed()
            try:
                cell.locator(".jp-InputPlaceholder").wait_for(state="attached", timeout=15_000)
            except Exception:
                pytest.fail(f"{name}: solution cell {index} is not folded")
        first = cells.nth(solution_indices(name)[0])
        first.locator(".jp-InputPlaceholder").click()
        first.locator(".jp-InputArea-editor").wait_for(state="visible", timeout=10_000)
        page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_lab.png"))
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_failure.png"))
        raise
    finally:
        page.close()
        stop_kernels(url)


@pytest.mark.parametrize("name", list(EXPLORERS), ids=[n[:2] for n in EXPLORERS])
def test_an_explorer_responds_in_jupyterlab(
    name: str, lab: tuple[str, Path], browser: object
) -> None:
    """The chapter's explorer cell, run in a live kernel after a quick set-up, draws its
    widget (not the text fallback), and moving a control changes the picture."""
    url, _ = lab
    _, how = EXPLORERS[name]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        panel = open_notebook(page, url, f"explore{name[:2]}", f"explore_{name}")
        explorer = panel.locator(".jp-Notebook .jp-Cell").nth(1)
        explorer.wait_for(state="attached", timeout=60_000)
        run_all(page, panel)
        page.wait_for_function(  # the widget, or a traceback (no use waiting any longer)
            "([panel, cell]) => cell.querySelector('.widget-vbox') || [...panel.querySelectorAll("
            "'.jp-OutputArea-output')].some(o => o.textContent.includes('Traceback'))",
            arg=[panel.element_handle(), explorer.element_handle()],
            timeout=RUN_ALL_SECONDS * 1000,
        )
        errors = panel.locator(".jp-OutputArea-output")
        tracebacks = [e for e in errors.all_inner_texts() if "Traceback" in e]
        assert not tracebacks, tracebacks[0][-2000:]
        text = explorer.locator(".jp-OutputArea-output").first.inner_text()
        assert "here it shows its starting state" not in text, "the text fallback rendered"
        before = explorer_picture(page, explorer)
        start = time.perf_counter()
        move_control(explorer, how)
        page.wait_for_function(
            "([cell, before]) => { const img = cell.querySelector('img.widget-image');"
            " return img && img.src !== before; }",
            arg=[explorer.element_handle(), before],
            timeout=30_000,
        )
        print(f"{name}: the picture changed {time.perf_counter() - start:.2f} s after the move")
        explorer.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_explorer.png"))
        tracebacks = [e for e in errors.all_inner_texts() if "Traceback" in e]
        assert not tracebacks, tracebacks[0][-2000:]  # nothing broke while it answered
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_explorer_failure.png"))
        raise
    finally:
        page.close()
        stop_kernels(url)


def test_after_run_all_no_answer_is_on_the_screen(lab: tuple[str, Path], browser: object) -> None:
    """What a learner does first -- Run All -- runs every worked solution too: what it prints
    must stay folded (utils.folded_output) until the learner opens it, and then show."""
    url, _ = lab
    name = RUN_ALL_CHAPTER
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        panel = open_notebook(page, url, "run-all", name)
        cells = panel.locator(".jp-Notebook .jp-Cell")
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        cells.nth(len(notebook.cells) - 1).wait_for(state="attached", timeout=60_000)
        run_all(page, panel)
        solutions = solution_indices(name)
        page.wait_for_function(  # every worked solution has run (the last is near the end)
            "([panel, count]) => panel.querySelectorAll('details').length >= count",
            arg=[panel.element_handle(), len(solutions)],
            timeout=RUN_ALL_SECONDS * 1000,
        )
        for index in solutions:
            cell = cells.nth(index)
            cell.scroll_into_view_if_needed()
            cell.locator("details").wait_for(state="attached", timeout=30_000)
            shown = cell.locator(".jp-Cell-outputWrapper").inner_text()
            assert "Correct" not in shown and not any(c.isdigit() for c in shown), (
                f"{name}: solution cell {index} shows {shown[:200]!r} after Run All"
            )
        page.screenshot(path=str(SCREENSHOTS / "run_all_solutions_folded.png"))
        # opened deliberately (the code, then its output), the answer is there
        first = cells.nth(solutions[0])
        first.locator(".jp-InputPlaceholder").click()
        output_placeholder = first.locator(".jp-OutputPlaceholder")
        if output_placeholder.count():
            output_placeholder.first.click()
        first.locator("details summary").click()
        assert "Correct" in first.locator("details").inner_text()
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / "run_all_failure.png"))
        raise
    finally:
        page.close()
        stop_kernels(url)


def test_a_book_page_renders_offline(built_book: Path, browser: object) -> None:
    """The book from disk: maths typeset by the local MathJax, a figure, a widget from its
    stored state, and not one request that would leave the machine."""
    context = browser.new_context()
    outside: list[str] = []

    def refuse(route: object) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", refuse)
    page = context.new_page()
    try:
        page.goto((built_book / "01_concepts.html").as_uri())
        page.locator("mjx-container").first.wait_for(timeout=30_000)
        assert page.locator("mjx-container").count() > 5, "the maths was not typeset"
        loaded = page.evaluate(
            "() => [...document.querySelectorAll('img')].filter("
            "i => i.complete && i.naturalWidth > 0 && i.src.includes('_images')).length"
        )
        assert loaded > 0, "no figure loaded"
        page.locator(".widget-vbox").first.wait_for(timeout=30_000)
        page.locator(".widget-vbox .widget-slider").first.wait_for(timeout=10_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "book_01_concepts.png"), full_page=False)
        page.locator(".widget-vbox").first.screenshot(
            path=str(SCREENSHOTS / "book_01_explorer.png")
        )
        assert outside == [], f"the page asked the network for {outside}"
    finally:
        context.close()
