"""Image sources, the image policy (what a server may read) and chat-message conversion errors."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from medmo.infer.inputs import ImagePolicy, InputError, decode_data_url, load_any, to_conversation


def png_bytes(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def test_data_urls_png_and_dicom():
    import pydicom.data

    im = decode_data_url(data_url(png_bytes(7, 5)))
    assert im.size == (7, 5) and im.getpixel((0, 0)) == (10, 200, 30)
    raw = open(pydicom.data.get_testdata_file("CT_small.dcm"), "rb").read()
    for mime in ("application/dicom", "application/octet-stream"):  # DICM magic is enough
        dcm = decode_data_url(data_url(raw, mime))
        assert dcm.size == (128, 128) and dcm.mode == "RGB"


@pytest.mark.parametrize(
    ("src", "status", "words"),
    [
        ("data:image/png,notbase64", 400, "malformed data URL"),
        ("data:image/png;base64,@@@", 400, "not valid base64"),
        (data_url(b"hello, not an image"), 400, "not a readable image"),
        ("https://example.org/x.png", 403, "--allow-remote-images"),
        (b"\x89PNG garbage", 400, "not a readable image"),
        (12, 400, "got int"),
    ],
)
def test_bad_sources_get_clear_errors(src, status, words):
    with pytest.raises(InputError, match=words) as e:
        load_any(src, ImagePolicy(), "messages[0].content[1]")
    assert e.value.status == status
    assert str(e.value).startswith("messages[0].content[1]")


def test_pixel_and_byte_limits_are_413_before_decoding():
    with pytest.raises(InputError, match="above the server's limit of 1000") as e:
        load_any(data_url(png_bytes(50, 40)), ImagePolicy(max_pixels=1000))
    assert e.value.status == 413
    with pytest.raises(InputError, match="larger than") as e:
        load_any(data_url(png_bytes(50, 40)), ImagePolicy(max_bytes=20))
    assert e.value.status == 413


def test_local_files_policy(tmp_path):
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "a.png").write_bytes(png_bytes(3, 4))
    (tmp_path / "secret.png").write_bytes(png_bytes(3, 4))
    assert load_any(str(inside / "a.png")).size == (3, 4)  # the Python API reads local files
    with pytest.raises(InputError, match="--allow-local-files") as e:
        load_any(str(inside / "a.png"), ImagePolicy(allow_local=False))
    assert e.value.status == 403
    jail = ImagePolicy(allow_local=True, local_root=inside)
    assert load_any(f"file://{inside}/a.png", jail).size == (3, 4)
    with pytest.raises(InputError, match="inside the folder"):
        load_any(str(inside / ".." / "secret.png"), jail)
    with pytest.raises(InputError, match="no such image file"):
        load_any(str(inside / "missing.png"), jail)


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        (["hi"], r"messages\[0\]: expected an object"),
        ([{"role": "doctor", "content": "hi"}], r"messages\[0\].role: expected one of"),
        ([{"role": "user", "content": 3}], r"messages\[0\].content: expected a string or a list"),
        ([{"role": "user", "content": [{"type": "audio"}]}], r"messages\[0\].content\[0\].type"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], r"content\[0\].image_url"),
        ([{"role": "user", "content": [{"type": "text", "text": 5}]}], r"content\[0\].text: expected a string"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "last message must be from the user"),
    ],
)
def test_bad_messages_name_the_problem(messages, words):
    with pytest.raises(InputError, match=words) as e:
        to_conversation(messages, ImagePolicy())
    assert e.value.status == 400


def test_too_many_images():
    part = {"type": "image_url", "image_url": {"url": data_url(png_bytes(2, 2))}}
    with pytest.raises(InputError, match="at most 2") as e:
        to_conversation([{"role": "user", "content": [part] * 3}], ImagePolicy(max_images=2))
    assert e.value.status == 413


def test_conversation_keeps_order_and_roles():
    url = data_url(png_bytes(2, 3))
    conv, images = to_conversation([
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image_url", "image_url": url}]},
    ])
    assert conv == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image"}]},
    ]
    assert [im.size for im in images] == [(2, 3)]
