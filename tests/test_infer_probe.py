"""Header-only image measurement and the per-request budget: limits hold before anything is decoded."""

from __future__ import annotations

import base64
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import medmo.infer.inputs as inputs
from medmo.infer.inputs import ImagePolicy, InputError, load_any, to_conversation
from medmo.infer.probe import DICOM_HEADER_BYTES, probe_bytes


def dicom_bytes(rows: int, cols: int, *, deflated: bool = False, pixels: bytes | None = None,
                trailing: int = 0) -> bytes:
    """A MONOCHROME2 16-bit DICOM file; ``trailing`` bytes of a private element after the pixel data."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, SecondaryCaptureImageStorage,
                             generate_uid)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.Modality, ds.Rows, ds.Columns = "OT", rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels if pixels is not None else np.zeros((rows, cols), np.uint16).tobytes()
    if trailing:
        ds.add_new(0x7FE10010, "LO", "MEDMO TEST")
        ds.add_new(0x7FE11000, "OB", b"\0" * trailing)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def url(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def blank_png(w: int, h: int, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def test_probe_reads_sizes_and_estimates_decoding_memory():
    png = probe_bytes(blank_png(300, 200, "RGB"), "image")
    assert (png.width, png.height) == (300, 200) and png.work_bytes == 300 * 200 * (3 + 3)
    dcm = probe_bytes(dicom_bytes(40, 30), "image")
    assert (dcm.width, dcm.height) == (30, 40) and dcm.work_bytes > 40 * 30 * 16  # float64 rendering path
    deflated = probe_bytes(dicom_bytes(40, 30, deflated=True), "image")
    assert (deflated.width, deflated.height) == (30, 40) and deflated.work_bytes > dcm.work_bytes  # + inflated data


def test_a_deflated_dicom_bomb_is_refused_from_its_header_without_inflating_it():
    raw = dicom_bytes(4000, 4000, deflated=True)  # 32 MB of pixels once inflated, ~31 KB on the wire
    assert len(raw) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="4000x4000 = 16000000 pixels, above the server's limit") as e:
            load_any(url(raw, "application/dicom"), ImagePolicy(max_pixels=10_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.value.status == 413
    assert peak < 4 * DICOM_HEADER_BYTES, f"peak {peak} bytes: more than the header was inflated (32 MB in all)"


def test_a_deflated_dicom_inflating_beyond_its_header_is_refused():
    raw = dicom_bytes(32, 32, deflated=True, trailing=4 * 2**20)  # 2 KB of pixels, 4 MiB of zeros after them
    with pytest.raises(InputError, match="inflates to more than") as e:
        load_any(url(raw, "application/dicom"), ImagePolicy())
    assert e.value.status == 413
    with pytest.raises(InputError, match="decoding the request's images needs about"):
        load_any(url(dicom_bytes(512, 512, deflated=True), "application/dicom"), ImagePolicy(max_decoded_bytes=2**20))


def test_request_budget_refuses_before_decoding_anything(monkeypatch):
    decoded = []
    real = inputs.load_image
    monkeypatch.setattr(inputs, "load_image", lambda src, *a, **k: decoded.append(1) or real(src, *a, **k))
    part = {"type": "image_url", "image_url": {"url": url(blank_png(2000, 2000), "image/png")}}
    messages = [{"role": "user", "content": [part] * 8 + [{"type": "text", "text": "q"}]}]
    with pytest.raises(InputError, match=r"content\[2\]: the request's images add up to 12000000 pixels, above the "
                                         "server's limit of 10000000 per request") as e:
        to_conversation(messages, ImagePolicy(max_request_pixels=10_000_000))
    assert e.value.status == 413 and decoded == []  # refused from headers: not one image decoded
    with pytest.raises(InputError, match="above the server's limit of 24 MiB per request") as e:
        to_conversation(messages, ImagePolicy(max_decoded_bytes=24 * 2**20))
    assert e.value.status == 413 and decoded == []
    conv, images = to_conversation(messages[:1], ImagePolicy(max_request_pixels=40_000_000))
    assert len(images) == 8 and len(decoded) == 8


def test_upload_errors_name_the_upload_not_a_server_path():
    corrupt = dicom_bytes(64, 64, pixels=b"\x01\x02" * 50)  # a valid header, truncated pixel data
    for raw in (corrupt, b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 10):
        with pytest.raises(InputError) as e:
            load_any(url(raw, "application/dicom"), ImagePolicy(), "messages[0].content[0]")
        text = str(e.value)
        assert text.startswith("messages[0].content[0]: ") and e.value.status == 400
        assert "medmo-upload" not in text and "/tmp" not in text and "Doe" not in text, text
