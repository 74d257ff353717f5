"""Tests for medmo.data.outbound: only pixels leave, through the OpenAI-compatible backend and the exporters.

The fault of issue 15 item 3: a DICOM file named ``.png`` was sent raw (``data:image/png``, header and all)
and exported as a path to itself. Here DICOM headers carry identifier markers, PNGs carry text chunks and
JPEGs EXIF / comments; no marker may reach a request body or an exported file.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from medmo.data.export import export
from medmo.data.images import load_image
from medmo.data.outbound import safe_image_bytes, shareable_as_stored
from medmo.records import ImageRef, Sample

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

# Thirteen identifying attributes of DICOM PS3.15 Annex E, each set to a value found nowhere else.
MARKERS = {
    "PatientName": "QZNAME^QZGIVEN", "PatientID": "QZPID0001", "PatientBirthDate": "19010203",
    "PatientAddress": "QZADDRESS", "OtherPatientIDs": "QZOTHERID", "InstitutionName": "QZINSTITUTE",
    "ReferringPhysicianName": "QZREFDOC", "OperatorsName": "QZOPERATOR", "AccessionNumber": "QZACC0001",
    "StudyID": "QZSTUDY", "StudyDescription": "QZSTUDYDESC", "SeriesDescription": "QZSERIESDESC",
    "StationName": "QZSTATION",
}  # fmt: skip
NEEDLES = [v.encode() for v in MARKERS.values()] + [b"QZNAME", b"QZTEXT", b"QZEXIF", b"QZCOMMENT", b"DICM"]


def _leaks(blob: bytes) -> list[str]:
    return [n.decode() for n in NEEDLES if n in blob]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """A DICOM saved under image names, a PNG with text chunks, a JPEG with EXIF and a comment, plain files."""
    d = tmp_path_factory.mktemp("outbound")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in MARKERS.items():
        setattr(ds, keyword, value)
    paths = {}
    for name in ("scan.png", "scan.jpg", "scan.dcm", "scan"):
        ds.save_as(d / name)
        paths[name] = d / name
    pixels = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "QZTEXT patient")
    info.add_itxt("Author", "QZTEXT author", zip=True)
    Image.fromarray(pixels).save(d / "text.png", pnginfo=info)
    exif = Image.Exif()
    exif[0x010E], exif[0x013B] = "QZEXIF description", "QZEXIF artist"  # ImageDescription, Artist
    Image.fromarray(pixels).save(d / "exif.jpg", exif=exif, comment=b"QZCOMMENT")
    Image.fromarray(pixels).save(d / "tags.tif", tiffinfo={270: "QZTEXT description"})
    Image.fromarray(pixels).save(d / "plain.png")
    Image.fromarray(pixels).save(d / "plain.jpg", quality=90)
    (d / "trailing.png").write_bytes((d / "plain.png").read_bytes() + b"QZTEXT")
    return {**paths, **{p.name: p for p in d.iterdir() if p.name not in paths}}


def test_only_pixels_leave_whatever_the_file_is_called(images):
    for name in ("scan.png", "scan.jpg", "scan.dcm", "scan", "text.png", "exif.jpg", "tags.tif", "trailing.png"):
        assert _leaks(images[name].read_bytes()), name  # the fixture does carry markers
        data, mime = safe_image_bytes(images[name])
        assert mime == "image/png" and data.startswith(b"\x89PNG") and not _leaks(data), name
        assert shareable_as_stored(images[name]) is None
        decoded = Image.open(io.BytesIO(data))
        assert not decoded.info.get("exif") and not getattr(decoded, "text", {}), name
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(load_image(images[name]))), name


def test_plain_png_and_jpeg_leave_as_stored(images):
    for name, mime in (("plain.png", "image/png"), ("plain.jpg", "image/jpeg")):
        assert shareable_as_stored(images[name]) == mime
        assert safe_image_bytes(images[name]) == (images[name].read_bytes(), mime)
    # A chosen frame is always rendered; a real PNG named .jpg goes by its content.
    assert safe_image_bytes(images["plain.png"], frame=0)[1] == "image/png"
    misnamed = images["plain.png"].with_name("plain-png.jpg")
    shutil.copy(images["plain.png"], misnamed)
    assert safe_image_bytes(misnamed)[1] == "image/png"


class _Capture:
    """A local ``/v1/chat/completions`` that keeps every raw request body."""

    def __init__(self):
        self.bodies: list[bytes] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                capture.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_openai_backend_request_bodies_carry_no_header(images):
    from medmo.eval.backends.base import Request
    from medmo.eval.backends.openai import OpenAIBackend

    server = _Capture()
    try:
        names = ("scan.png", "scan.jpg", "scan", "text.png", "exif.jpg", "plain.jpg")
        reqs = [Request(n, [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}],
                        [ImageRef(str(images[n]))]) for n in names]  # fmt: skip
        assert OpenAIBackend("m", server.url, retries=0).generate(reqs) == ["ok"] * len(names)
    finally:
        server.server.shutdown()
    assert len(server.bodies) == len(names)
    for body in server.bodies:
        assert not _leaks(body)
        for mime, b64 in re.findall(rb"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)", body):
            raw = base64.b64decode(b64)
            assert not _leaks(raw)
            assert raw.startswith(b"\x89PNG" if mime == b"image/png" else b"\xff\xd8\xff")


@pytest.mark.parametrize("fmt, out, embed", [("swift", "x.jsonl", False), ("llamafactory", "x.jsonl", False),
                                             ("verl", "x.parquet", False), ("verl", "x.parquet", True)])  # fmt: skip
def test_exported_files_carry_no_header(images, tmp_path, fmt, out, embed):
    import pyarrow.parquet as pq

    names = ("scan.png", "scan.jpg", "scan", "text.png", "exif.jpg", "tags.tif", "plain.png", "plain.jpg")
    samples = [Sample(f"s{i}", "open_vqa", "t", "train", question="q?", answer="a", images=[ImageRef(str(images[n]))])
               for i, n in enumerate(names)]  # fmt: skip
    report = export(samples, tmp_path / out, fmt, embed_images=embed)
    assert report["written"] == len(names)
    assert report["rendered_images"] == (0 if embed else len(names) - 2)
    if fmt == "verl":
        rows = pq.read_table(tmp_path / out).to_pylist()
        pointed = [i["image"] for r in rows for i in r["images"] if i.get("image")]
        blobs = [i["bytes"] for r in rows for i in r["images"] if i.get("bytes")]
        assert len(pointed or blobs) == len(names)
    else:
        pointed = [p for line in (tmp_path / out).read_text().splitlines() for p in json.loads(line)["images"]]
        blobs = []
    # Every written file, every file a row points to, every embedded image.
    blobs += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()] + [Path(p).read_bytes() for p in pointed]
    for blob in blobs:
        assert not _leaks(blob)
    kept = {Path(p).name for p in pointed} & set(names)
    assert kept == ({"plain.png", "plain.jpg"} if pointed else set())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b""]), body=st.binary(max_size=64), cut=st.integers(0, 400))
def test_structure_parsers_never_fail_on_damaged_files(tmp_path, images, head, body, cut):
    """Random and cut-off PNG/JPEG structures are judged (as stored or not) without an exception."""
    for base in (images["plain.png"].read_bytes(), images["plain.jpg"].read_bytes(), b""):
        f = tmp_path / "x.img"
        f.write_bytes((head + body) if not base else base[:cut] + body)
        assert shareable_as_stored(f) in (None, "image/png", "image/jpeg")
