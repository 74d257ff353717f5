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


def test_pixel_template_and_sampling_flags_reach_the_model(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from medmo.infer.engine import HFEngine

    image = tmp_path / "scan.png"
    Image.new("RGB", (64, 48), (9, 90, 200)).save(image)
    template = tmp_path / "t.jinja"
    template.write_text(  # a plain template of one's own: roles as words, images as Qwen3-VL's vision tokens
        "{% for m in messages %}{{ m['role'] }}: {% for p in m['content'] %}{% if p['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ p['text'] }}{% endif %}{% endfor %}\n"
        "{% endfor %}assistant:")
    seen: dict = {}
    real_load, real_complete = HFEngine.load.__func__, HFEngine.complete

    def load(cls, path, **kwargs):
        seen["engine"] = real_load(cls, path, **kwargs)
        return seen["engine"]

    def complete(self, conversations, images, **kwargs):
        seen["gen"] = kwargs
        return real_complete(self, conversations, images, **kwargs)

    monkeypatch.setattr(HFEngine, "load", classmethod(load))
    monkeypatch.setattr(HFEngine, "complete", complete)
    argv = ["ask", str(tiny_model_dir), str(image), "q?", "--max-new-tokens", "2", "--min-pixels", "1024",
            "--max-pixels", "2048", "--chat-template", str(template), "--temperature", "0.5", "--top-p", "0.9",
            "--top-k", "5"]
    assert main(argv) == 0
    processor = seen["engine"].processor
    assert processor.pixel_range == (1024, 2048) and processor.chat_template == template.read_text()
    assert {k: seen["gen"][k] for k in ("do_sample", "temperature", "top_p", "top_k")} == {
        "do_sample": True, "temperature": 0.5, "top_p": 0.9, "top_k": 5}
    assert main(["report", str(tiny_model_dir), str(image), "--max-new-tokens", "2", "--sample"]) == 0
    assert seen["gen"]["do_sample"] is True and seen["gen"]["temperature"] is None  # the checkpoint's own
    assert main(["ground", str(tiny_model_dir), str(image), "x", "--max-new-tokens", "2"]) == 0
    assert seen["gen"]["do_sample"] is False
    assert main(["ask", str(tiny_model_dir), str(image), "q", "--chat-template", "nope"]) == 2
    assert "--chat-template" in capsys.readouterr().err


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
            seen["pixels"] = app.state.engine.processor.pixel_range
            seen["unauthorized"] = c.get("/v1/models").status_code
            seen["models"] = c.get("/v1/models", headers={"Authorization": "Bearer k"}).json()["data"][0]["id"]

    monkeypatch.setattr(uvicorn, "run", fake_run)
    argv = ["serve", str(tiny_model_dir), "--port", "8123", "--api-key", "k", "--model-name", "nano-test",
            "--min-pixels", "1024", "--max-pixels", "2048"]
    assert main(argv) == 0
    assert seen == {"host": "127.0.0.1", "port": 8123, "health": {"status": "ok", "model": "nano-test", "queued": 0,
                    "running": 0}, "rebinding": 400, "unauthorized": 401, "models": "nano-test",
                    "pixels": (1024, 2048)}


def test_commands_that_load_a_model_take_this_process_gpu_by_default(monkeypatch):
    """ask / ground / report / serve / eval run: the GPU when one is visible (one per launched process), the CPU
    otherwise or when asked; --dtype and --device-map are declared once for all of them."""
    import torch

    from medmo.model.flags import load_kwargs

    parser = build_parser()
    commands = [["ask", "m", "i.png", "q"], ["serve", "m"], ["eval", "run", "m", "--bench", "nano"]]
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in commands:
        assert load_kwargs(parser.parse_args(argv)) == {"dtype": "auto"}  # CPU: no device map
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for argv in commands:
        assert load_kwargs(parser.parse_args(argv))["device_map"] == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "2")  # the third process of torchrun / accelerate launch on this node
    assert load_kwargs(parser.parse_args(commands[2]))["device_map"] == "cuda:2"
    assert "device_map" not in load_kwargs(parser.parse_args([*commands[0], "--device-map", "cpu"]))
    assert load_kwargs(parser.parse_args([*commands[1], "--device-map", "auto", "--dtype", "bfloat16"])) == {
        "dtype": "bfloat16", "device_map": "auto"}


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
