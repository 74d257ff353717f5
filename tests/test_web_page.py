"""The web page in headless Chromium: upload an image, click Ground, see the boxes drawn on the canvas.

Drives Debian's /usr/bin/chromium through playwright-core (Node), both installed by
``scripts/install_browser.sh``; the server runs under uvicorn on loopback with a scripted engine, so the
box is known. Skips only when the browser (or its driver) is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from medmo.infer.engine import ScriptedEngine, last_user_text
from medmo.serve.app import create_app

ROOT = Path(__file__).resolve().parents[1]
PLAYWRIGHT = ROOT / ".browser" / "node_modules" / "playwright-core"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BOX_REPLY = "nodule <box>[[100, 200, 300, 400]]</box>"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

DRIVER = r"""
const { chromium } = require(process.env.PLAYWRIGHT);
const [url, png, dcm, shot, profile] = process.argv.slice(2);
(async () => {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM, headless: true, args: JSON.parse(process.env.FLAGS) });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  const out = { console: [] };
  page.on("pageerror", (e) => out.console.push(String(e)));
  await page.goto(url);
  out.disclaimer = await page.textContent("#disclaimer");
  // DICOM: rendered server-side, drawn at its own size
  await page.setInputFiles("#file", dcm);
  await page.waitForFunction(() => !document.querySelector("#btn-ground").disabled);
  out.dicomCanvas = await page.evaluate(() => [canvas.width, canvas.height]);
  // PNG: ground a nodule, boxes drawn in original pixels
  await page.setInputFiles("#file", png);
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("scan.png"));
  await page.fill("#prompt", "nodule");
  await page.click("#btn-ground");
  await page.waitForSelector("#boxes li.box");
  out.boxes = await page.$$eval("#boxes li.box", (els) => els.map((e) => e.textContent));
  out.answer = await page.textContent("#answer");
  out.status = await page.textContent("#status");
  out.canvas = await page.evaluate(() => {
    const c = document.getElementById("canvas"), ctx = c.getContext("2d");
    const px = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
    return { size: [c.width, c.height], nBoxes: c.dataset.boxes, edge: px(40, 20), inside: px(40, 30), outside: px(150, 80) };
  });
  await page.screenshot({ path: shot, fullPage: true });
  await ctx.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_url():
    import uvicorn

    engine = ScriptedEngine(lambda conv: BOX_REPLY if "nodule" in last_user_text(conv) else "?")
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}/"
    server.should_exit = True
    thread.join(10)


def test_upload_ground_and_see_boxes(server_url, tmp_path):
    if not (os.path.exists(CHROMIUM) and shutil.which("node") and PLAYWRIGHT.is_dir()):
        pytest.skip("headless Chromium or playwright-core not installed; run scripts/install_browser.sh")
    import pydicom.data

    png = tmp_path / "scan.png"
    Image.new("RGB", (200, 100), (128, 128, 128)).save(png)
    script = tmp_path / "drive.js"
    script.write_text(DRIVER)
    shot = tmp_path / "web_page.png"
    env = {**os.environ, "PLAYWRIGHT": str(PLAYWRIGHT), "CHROMIUM": CHROMIUM, "FLAGS": json.dumps(CHROMIUM_FLAGS)}
    dcm = pydicom.data.get_testdata_file("CT_small.dcm")
    args = ["node", str(script), server_url, str(png), dcm, str(shot), str(tmp_path / "profile")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert "Research use only" in out["disclaimer"] and "not for clinical decisions" in out["disclaimer"]
    assert out["dicomCanvas"] == [128, 128]
    assert out["boxes"] == ["nodule: [20, 20, 60, 40] px"]  # grid 100..400 on a 200 x 100 image
    assert out["answer"] == "nodule <box>[[100, 200, 300, 400]]</box>" and out["status"] == "1 box(es) found"
    canvas = out["canvas"]
    assert canvas["size"] == [200, 100] and canvas["nBoxes"] == "1"
    r, g, b = canvas["edge"]
    assert r > 200 and g < 110 and b < 110, f"box edge at (40, 20) is not red: {canvas['edge']}"
    assert canvas["inside"] == [128, 128, 128] and canvas["outside"] == [128, 128, 128]
    assert out["console"] == []
    assert shot.stat().st_size > 1000
    print(f"screenshot: {shot}")
