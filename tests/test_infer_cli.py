"""``medmo ask / ground / report`` on the real tiny model, and ``medmo serve``'s safe defaults."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from medmo.cli import build_parser, main


def test_ask_ground_report_commands(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(1).random((48, 64)) * 255).astype("uint8")).save(image)
    out = tmp_path / "boxes.png"
    common = [str(tiny_model_dir), str(image)]

    assert main(["ground", *common, "nodule", "--out", str(out), "--max-new-tokens", "6"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["target"] == "nodule" and isinstance(printed["boxes"], list) and isinstance(printed["text"], str)
    with Image.open(out) as drawn:
        assert drawn.format == "PNG" and drawn.size == (64, 48)

    assert main(["ask", *common, "Which organ is shown?", "--max-new-tokens", "4"]) == 0
    assert main(["report", *common, "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.count("\n") >= 2


def test_missing_image_is_a_clean_error(tiny_model_dir, tmp_path, capsys):
    assert main(["ask", str(tiny_model_dir), str(tmp_path / "nope.png"), "q?"]) == 2
    assert "no such image file" in capsys.readouterr().err


def test_serve_defaults_to_loopback_without_remote_or_local_images():
    args = build_parser().parse_args(["serve", "some/model"])
    assert args.host == "127.0.0.1"
    assert args.allow_remote_images is False and args.allow_local_files is None


def test_serve_command_builds_the_app_from_flags(tiny_model_dir, monkeypatch):
    import uvicorn
    from fastapi.testclient import TestClient

    seen = {}

    def fake_run(app, host, port, **kw):
        seen.update(host=host, port=port)
        with TestClient(app, base_url=f"http://{host}:{port}") as c:
            seen["health"] = c.get("/health").json()
            seen["rebinding"] = c.get("/health", headers={"Host": "evil.example"}).status_code
            seen["unauthorized"] = c.get("/v1/models").status_code
            seen["models"] = c.get("/v1/models", headers={"Authorization": "Bearer k"}).json()["data"][0]["id"]

    monkeypatch.setattr(uvicorn, "run", fake_run)
    argv = ["serve", str(tiny_model_dir), "--port", "8123", "--api-key", "k", "--model-name", "nano-test"]
    assert main(argv) == 0
    assert seen == {"host": "127.0.0.1", "port": 8123, "health": {"status": "ok", "model": "nano-test", "queued": 0,
                    "running": 0}, "rebinding": 400, "unauthorized": 401, "models": "nano-test"}


def test_imports_stay_light():
    import subprocess
    import sys

    code = (
        "import sys, medmo.infer, medmo.infer.api, medmo.infer.cli, medmo.serve, medmo.serve.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'uvicorn') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1000:]
