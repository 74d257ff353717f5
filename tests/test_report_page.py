"""The run report's page: every table is an HTML table built from the table objects, seen in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from medmo.pages import Code, Grid, Heading, Text, grid_markdown, to_html, to_markdown

ROOT = Path(__file__).resolve().parents[1]
PLAYWRIGHT = ROOT / ".browser" / "node_modules" / "playwright-core"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

READ_PAGE = r"""
const { chromium } = require(process.env.PLAYWRIGHT);
const [url, profile] = process.argv.slice(2);
(async () => {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM, headless: true, args: JSON.parse(process.env.FLAGS) });
  const page = await ctx.newPage();
  await page.goto(url);
  const out = await page.evaluate(() => ({
    tables: [...document.querySelectorAll('table')].map(t => ({
      caption: t.caption ? t.caption.textContent : '',
      header: [...t.querySelectorAll('thead th')].map(c => c.textContent),
      rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent)),
    })),
    pipeText: [...document.querySelectorAll('p, li')].filter(e => e.textContent.trim().startsWith('|')).length,
  }));
  console.log(JSON.stringify(out));
  await ctx.close();
})();
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with real results (the baseline backend evaluated twice) and its report."""
    from medmo.data.synth import build_nano
    from medmo.eval.backends.baseline import BaselineBackend
    from medmo.eval.runner import evaluate
    from medmo.speedrun_report import write_report

    run = tmp_path_factory.mktemp("run")
    paths = build_nano(run / "data", n_train=6, n_val=1, n_test=4, image_size=64)
    for name in ("baseline", "nano-sft"):
        backend = BaselineBackend.from_records(paths["train"])
        backend.name = name
        evaluate(backend, "nano", out_dir=run / "eval", data={"nano": str(run / "data")})
    (run / "stages").mkdir()
    (run / "stages" / "data.json").write_text(json.dumps({"command": "medmo data synth", "seconds": 1.5,
                                                          "peak_rss_mb": 100.0}))  # fmt: skip
    write_report(run)
    return run


def test_markdown_and_html_come_from_the_same_blocks(tmp_path):
    grid = Grid("nano suite", ["Model", "IoU"], [["a | b", "55.8"]], notes=["x100"])
    blocks = [Heading("Results"), grid, Text("Total: 3 s"), Code(["medmo train nano/sft"])]
    md, page = to_markdown(blocks, tmp_path), to_html(blocks, tmp_path, "t")
    assert grid_markdown(grid) in md and "## Results" in md and "```\nmedmo train nano/sft\n```" in md
    assert "<caption>nano suite</caption>" in page and "<td>a | b</td>" in page and "<td class=n>55.8</td>" in page
    assert "| Model |" not in page


def test_the_report_page_renders_every_table_as_a_table(run, tmp_path):
    if not (os.path.exists(CHROMIUM) and shutil.which("node") and PLAYWRIGHT.is_dir()):
        pytest.skip("headless Chromium or playwright-core not installed; run scripts/install_browser.sh")
    script = tmp_path / "read.js"
    script.write_text(READ_PAGE)
    env = {**os.environ, "PLAYWRIGHT": str(PLAYWRIGHT), "CHROMIUM": CHROMIUM, "FLAGS": json.dumps(FLAGS)}
    proc = subprocess.run(["node", str(script), (run / "report.html").as_uri(), str(tmp_path / "profile")],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    md_tables = (run / "report.md").read_text().count("\n|---") + (run / "report.md").read_text().count("\n| --- ")
    assert len(out["tables"]) == md_tables >= 3  # nano suite, by question type, time per step
    suite = next(t for t in out["tables"] if t["caption"] == "nano suite")
    assert suite["header"][0] == "Model" and [r[0] for r in suite["rows"]] == ["trivial baseline",
                                                                               "after instruction tuning"]
    for t in out["tables"]:
        assert t["header"] and t["rows"] and all(len(r) == len(t["header"]) for r in t["rows"]), t["caption"]
    assert out["pipeText"] == 0  # no Markdown table left as text
