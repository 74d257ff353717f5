"""The MedMO Python API: prompts from medmo.prompts, boxes mapped to pixels, batching, chat formats."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from medmo.infer import GroundedBox, MedMO, ScriptedEngine
from medmo.infer.draw import PALETTE, draw_boxes
from medmo.infer.engine import last_user_text, stream_text
from medmo.prompts import CLOSED_SUFFIX, REPORT_PROMPT, grounding_prompt


class RecordingEngine(ScriptedEngine):
    """A scripted engine that also keeps every conversation and image it was given."""

    def __init__(self, reply):
        super().__init__(reply)
        self.seen: list[tuple[list, list]] = []

    def generate(self, conversations, images, **gen):
        self.seen.extend(zip(conversations, images))
        self.gen = gen
        return super().generate(conversations, images, **gen)


def gray(w: int, h: int, value: int = 128) -> Image.Image:
    return Image.new("L", (w, h), value)


def test_ground_maps_grid_boxes_to_original_pixels():
    engine = RecordingEngine("nodule <box>[[100, 200, 300, 400]]</box>")
    boxes = MedMO(engine).ground(gray(200, 100), "nodule")
    assert boxes == [GroundedBox("nodule", [20.0, 20.0, 60.0, 40.0], [100.0, 200.0, 300.0, 400.0])]
    conv, imgs = engine.seen[0]
    assert last_user_text(conv) == grounding_prompt("nodule")  # same wording as training
    assert conv[0]["content"][0] == {"type": "image"}
    assert imgs[0].mode == "RGB" and imgs[0].size == (200, 100)


def test_batched_ground_scales_each_box_to_its_own_image():
    engine = RecordingEngine(lambda conv: "mass <box>[[0, 0, 500, 500]]</box> <box>[[500, 500, 1000, 1000]]</box>")
    out = MedMO(engine).ground([gray(100, 50), gray(40, 80)], ["mass", "cyst"])
    assert engine.calls == [2]  # one batched generate call
    assert [b.box for b in out[0]] == [[0.0, 0.0, 50.0, 25.0], [50.0, 25.0, 100.0, 50.0]]
    assert [b.box for b in out[1]] == [[0.0, 0.0, 20.0, 40.0], [20.0, 40.0, 40.0, 80.0]]
    assert out[1][0].label == "mass"  # the model's label wins over the requested target
    assert [last_user_text(c) for c, _ in engine.seen] == [grounding_prompt("mass"), grounding_prompt("cyst")]


def test_ground_without_boxes_is_empty_not_an_error():
    assert MedMO(ScriptedEngine("I cannot see any nodule.")).ground(gray(10, 10), "nodule") == []


def test_ask_report_and_batching():
    engine = RecordingEngine(lambda conv: last_user_text(conv).upper())
    model = MedMO(engine, max_new_tokens=7)
    assert model.ask(gray(8, 8), "which organ?") == "WHICH ORGAN?"
    assert engine.gen["max_new_tokens"] == 7
    assert model.ask(gray(8, 8), "is it normal?", closed=True) == f"IS IT NORMAL?\n{CLOSED_SUFFIX}".upper()
    answers = model.ask([gray(8, 8), gray(9, 9), gray(10, 10)], "q?", max_new_tokens=3)
    assert answers == ["Q?"] * 3 and engine.calls[-1] == 3 and engine.gen["max_new_tokens"] == 3
    assert model.report(gray(8, 8)) == REPORT_PROMPT.upper()
    assert model.report([gray(8, 8), gray(8, 8)]) == [REPORT_PROMPT.upper()] * 2
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        model.ask([gray(8, 8)] * 2, ["a", "b", "c"])
    with pytest.raises(TypeError, match="top_kk"):
        model.ask(gray(8, 8), "q", top_kk=3)
    model.ask(gray(8, 8), "q", do_sample=True, top_p=0.5, top_k=3)  # sampling settings reach the engine
    assert {k: engine.gen[k] for k in ("do_sample", "top_p", "top_k")} == {"do_sample": True, "top_p": 0.5, "top_k": 3}
    assert engine.gen.get("temperature") is None  # not given: the checkpoint's generation_config decides


def test_inputs_path_numpy_dicom_nifti(tmp_path):
    import nibabel
    import pydicom.data

    engine = RecordingEngine("ok")
    model = MedMO(engine)
    png = tmp_path / "x.png"
    gray(30, 20).save(png)
    dcm = pydicom.data.get_testdata_file("CT_small.dcm")
    nii = f"{nibabel.__path__[0]}/tests/data/anatomical.nii"
    arr = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300)  # 16-bit, stretched to 8 bit
    model.ask([str(png), png, arr, dcm, nii], "q")
    sizes = [imgs[0].size for _, imgs in engine.seen]
    assert sizes[:3] == [(30, 20), (30, 20), (16, 12)]
    assert sizes[3] == (128, 128)  # CT_small is 128 x 128
    assert all(imgs[0].mode == "RGB" for _, imgs in engine.seen)
    assert min(sizes[4]) > 1


def _data_url(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_chat_accepts_openai_and_transformers_messages():
    engine = RecordingEngine(lambda conv: str(len(conv)))
    model = MedMO(engine)
    openai_msgs = [
        {"role": "system", "content": "You are a radiologist."},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _data_url(gray(12, 6))}},
            {"type": "text", "text": "Describe."},
        ]},
    ]
    hf_msgs = [{"role": "user", "content": [{"type": "image", "image": gray(5, 7)}, {"type": "text", "text": "Hi"}]}]
    assert model.chat(openai_msgs) == "2"
    assert model.chat([hf_msgs, openai_msgs]) == ["1", "2"]
    conv, imgs = engine.seen[0]
    assert conv[1]["content"] == [{"type": "image"}, {"type": "text", "text": "Describe."}]
    assert [im.size for im in imgs] == [(12, 6)]
    assert [im.size for im in engine.seen[1][1]] == [(5, 7)]


def test_draw_boxes_outlines_in_palette_colours():
    out = draw_boxes(gray(100, 60, 0).convert("RGB"), [GroundedBox("a", [10, 10, 50, 40], [0, 0, 0, 0])], width=2)
    assert out.size == (100, 60)
    assert out.getpixel((30, 10)) == PALETTE[0]  # top edge
    assert out.getpixel((30, 25)) == (0, 0, 0)  # inside stays untouched


def test_stream_text_pieces_rebuild_the_text():
    text = "nodule <box>[[100, 200, 300, 400]]</box> and a very_long_token_without_spaces_here"
    pieces = list(stream_text(text, piece_chars=8))
    assert "".join(pieces) == text and len(pieces) > 3


def test_real_tiny_model_end_to_end(tiny_model_dir):
    model = MedMO.from_pretrained(tiny_model_dir, max_new_tokens=4)
    im = Image.fromarray((np.random.default_rng(0).random((40, 60)) * 255).astype("uint8"))
    one = model.ask(im, "Which organ?")
    batch = model.ask([im, im.transpose(Image.Transpose.ROTATE_90)], ["Which organ?", "Which organ?"])
    assert isinstance(one, str) and len(batch) == 2 and batch[0] == one  # greedy: batching keeps answers
    boxes = model.ground(im, "nodule")
    assert isinstance(boxes, list) and all(isinstance(b, GroundedBox) for b in boxes)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which organ?"}]}]
    streamed = "".join(model.engine.stream(conversation, [im.convert("RGB")], max_new_tokens=4))
    assert streamed == one
