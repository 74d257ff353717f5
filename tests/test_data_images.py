"""Tests for medmo.data.images (and its DICOM half, medmo.data.dicom) on real files bundled with pydicom,
nibabel and our own 16-bit images."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo.data.images import ImageLoadError, check_image, image_size, load_image, safe_dicom_meta, to_uint8

pydicom = pytest.importorskip("pydicom")
nibabel = pytest.importorskip("nibabel")
from pydicom.data import get_testdata_file  # noqa: E402

ANATOMICAL = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"


def _gray(im: Image.Image) -> np.ndarray:
    a = np.asarray(im)
    assert im.mode == "RGB" and a.dtype == np.uint8
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    return a[..., 0].astype(int)


def test_png_8bit_gray_and_rgba(tmp_path):
    g = (np.arange(64 * 32) % 256).astype(np.uint8).reshape(32, 64)
    Image.fromarray(g).save(tmp_path / "g.png")
    im = load_image(tmp_path / "g.png")
    assert im.size == (64, 32) and image_size(tmp_path / "g.png") == (64, 32)
    assert (_gray(im) == g).all()  # 8-bit passes through unchanged
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.asarray(load_image(tmp_path / "a.png"))[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_minmax_rule(tmp_path, suffix):
    # 12-bit data in a 16-bit container: min-max stretch, so it is not left nearly black.
    a = np.linspace(100, 4095, 40 * 30).reshape(30, 40).astype(np.uint16)
    path = tmp_path / f"x16{suffix}"
    Image.fromarray(a).save(path)
    g = _gray(load_image(path))
    assert g.min() == 0 and g.max() == 255
    expected = np.rint((a.astype(float) - 100) / (4095 - 100) * 255)
    assert np.abs(g - expected).max() <= 1
    # A window makes the mapping explicit: everything above center + width/2 saturates.
    gw = _gray(load_image(path, window=(1000, 200)))
    assert gw[a > 1100].min() == 255 and gw[a < 900].max() == 0


def test_multipage_tiff_frame(tmp_path):
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    assert _gray(load_image(tmp_path / "m.tif", frame=2))[0, 0] == 30
    with pytest.raises(ImageLoadError, match="out of range"):
        load_image(tmp_path / "m.tif", frame=3)


def test_numpy_and_pil_inputs():
    arr = np.array([[0.0, 0.5], [1.0, 2.0]])
    assert _gray(load_image(arr)).tolist() == [[0, 64], [128, 255]]
    assert load_image(Image.new("L", (3, 2), 7)).size == (3, 2)
    assert _gray(load_image(np.zeros((4, 4), bool))).max() == 0
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((2, 2, 2, 2)))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageLoadError, match="bad.png.*re-download"):
        load_image(bad)
    with pytest.raises(ImageLoadError, match="bad.dcm"):
        (tmp_path / "bad.dcm").write_bytes(b"not a dicom at all" * 20)
        load_image(tmp_path / "bad.dcm")
    assert issubclass(ImageLoadError, ValueError)


def test_dicom_ct_rescale_and_percentile_window():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    g = _gray(load_image(path))
    assert g.shape == (128, 128) and image_size(path) == (128, 128)
    lo, hi = np.percentile(hu, [0.5, 99.5])
    assert (g[hu <= lo] == 0).all() and (g[hu >= hi] == 255).all()
    # Given window in Hounsfield units (after rescale): soft tissue window.
    gw = _gray(load_image(path, window=(40, 400)))
    assert (gw[hu < -160] == 0).all() and (gw[hu > 240] == 255).all()


def test_dicom_header_window_mr():
    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    assert np.array_equal(_gray(load_image(path)), _gray(load_image(path, window=(c, w))))
    expected = to_uint8(ds.pixel_array, (c, w))
    assert np.array_equal(_gray(load_image(path)), expected)


def test_dicom_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    normal = _gray(load_image(get_testdata_file("MR_small.dcm")))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    assert np.array_equal(_gray(load_image(tmp_path / "m1.dcm")), 255 - normal)


def test_dicom_multiframe_frames_differ():
    path = get_testdata_file("rtdose.dcm")  # 15 frames
    frames = pydicom.dcmread(path).pixel_array
    a, b = _gray(load_image(path, frame=0)), _gray(load_image(path, frame=7))
    assert a.shape == frames.shape[1:]
    assert not np.array_equal(a, b)
    with pytest.raises(ImageLoadError, match="15 frame"):
        load_image(path, frame=15)


def test_dicom_compressed_decodable_and_colour():
    rle = _gray(load_image(get_testdata_file("MR_small_RLE.dcm")))
    assert np.array_equal(rle, _gray(load_image(get_testdata_file("MR_small.dcm"))))
    ybr = load_image(get_testdata_file("examples_ybr_color.dcm"), frame=3)  # JPEG baseline, 30 frames
    assert ybr.size == (320, 240)
    assert load_image(get_testdata_file("SC_rgb_rle_16bit.dcm")).getextrema()[0][1] > 200


def test_dicom_missing_decoder_names_package():
    with pytest.raises(ImageLoadError, match=r"pip install pylibjpeg"):
        load_image(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))


def test_dicom_safe_meta_is_technical_only():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    meta = safe_dicom_meta(ds)
    assert meta["modality"] == "CT" and meta["rows"] == 128 and meta["cols"] == 128
    assert meta["pixel_spacing"] == pytest.approx([0.661468, 0.661468])
    assert meta["photometric"] == "MONOCHROME2"
    text = repr(meta)
    for phi in (str(ds.PatientName), ds.PatientID, ds.InstitutionName, ds.StudyInstanceUID):
        assert phi and phi not in text


def test_dicom_errors_never_quote_header_values(tmp_path, caplog, recwarn):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN998877"
    ds.NumberOfFrames = "987654321"
    ds.save_as(tmp_path / "x.dcm")
    # Corrupt the IS value so that pydicom's validation warning would quote an identifier-like string.
    raw = (tmp_path / "x.dcm").read_bytes()
    assert raw.count(b"987654321") == 1
    (tmp_path / "x.dcm").write_bytes(raw.replace(b"987654321", b"MRN998877"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "x.dcm")
    with caplog.at_level(logging.DEBUG):
        assert image_size(tmp_path / "x.dcm") == (128, 128)  # header-only path, same quiet zone
    meta = safe_dicom_meta(pydicom.dcmread(tmp_path / "x.dcm"))
    everything = str(err.value) + caplog.text + " ".join(str(w.message) for w in recwarn) + repr(meta)
    assert "x.dcm" in str(err.value)
    assert "Doe" not in everything and "998877" not in everything


def test_dicom_module_owns_dicom_and_images_reexports_it():
    import subprocess
    import sys

    from medmo.data import dicom, images

    assert images.safe_dicom_meta is dicom.safe_dicom_meta and images.DICOM_PHI_KEYWORDS is dicom.DICOM_PHI_KEYWORDS
    assert {"PatientName", "PatientID", "StudyInstanceUID"} <= dicom.DICOM_PHI_KEYWORDS
    with pytest.raises(AttributeError, match="no_such_name"):
        images.no_such_name  # noqa: B018
    # Either import order works (dicom imports images; images reaches dicom lazily), and neither loads pydicom.
    code = (
        "import sys, medmo.data.dicom, medmo.data.images as i\n"
        "from medmo.data.images import safe_dicom_meta\n"
        "assert safe_dicom_meta is medmo.data.dicom.safe_dicom_meta and 'pydicom' not in sys.modules"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_nifti_slices_match_nibabel():
    img = nibabel.as_closest_canonical(nibabel.load(ANATOMICAL))
    data = np.asanyarray(img.dataobj)
    im = load_image(ANATOMICAL)  # axial middle slice
    assert im.size == (data.shape[0], data.shape[1]) == image_size(ANATOMICAL)
    expected = to_uint8(np.flipud(data[:, :, data.shape[2] // 2].T), percentile=True)
    assert np.array_equal(_gray(im), expected)
    for axis in (0, 1):
        assert load_image(ANATOMICAL, axis=axis).size == image_size(ANATOMICAL, axis=axis)
    assert not np.array_equal(_gray(load_image(ANATOMICAL, slice_index=3)), _gray(im))
    with pytest.raises(ImageLoadError, match="out of range"):
        load_image(ANATOMICAL, slice_index=999)


def test_nifti_gz_and_truncated(tmp_path):
    vol = np.random.default_rng(0).normal(size=(6, 5, 4)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    assert load_image(tmp_path / "v.nii.gz").size == (6, 5)
    shutil.copy(ANATOMICAL, tmp_path / "t.nii")
    data = (tmp_path / "t.nii").read_bytes()
    (tmp_path / "t.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="t.nii"):
        load_image(tmp_path / "t.nii")


def test_huge_image_gets_actionable_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ImageLoadError, match="big.png.*safety limit.*tile it"):
        load_image(tmp_path / "big.png")


def test_nifti_frame_is_slice_for_3d_volumes():
    from medmo.data.images import load_image_ref
    from medmo.records import ImageRef

    by_slice = _gray(load_image(ANATOMICAL, slice_index=5))
    assert np.array_equal(_gray(load_image(ANATOMICAL, frame=5)), by_slice)
    assert np.array_equal(_gray(load_image_ref(ImageRef(str(ANATOMICAL), frame=5))), by_slice)


def _truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def test_check_image_decodes_what_headers_let_through(tmp_path):
    """Truncated PNG, JPEG, TIFF, DICOM and NIfTI keep a readable header; check_image rejects each like load_image."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (96, 128), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.png")
    Image.fromarray(np.stack([noise] * 3, -1)).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(noise).save(tmp_path / "a.tif")
    vol = rng.normal(size=(12, 10, 8)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), tmp_path / "a.nii")
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), tmp_path / "a.nii.gz")
    ct = Path(get_testdata_file("CT_small.dcm"))
    good = [tmp_path / n for n in ("a.png", "a.jpg", "a.tif", "a.nii", "a.nii.gz")] + [ct]
    for path in good:
        assert check_image(path) == image_size(path) == load_image(path).size, path
    for path in good:
        bad = _truncated(path, tmp_path / f"cut-{path.name}", 0.8 if path.suffix == ".dcm" else 0.5)
        assert image_size(bad) == image_size(path)  # the header survives: a header check passes it
        with pytest.raises(ImageLoadError, match=f"cut-{path.name}"):
            load_image(bad)
        with pytest.raises(ImageLoadError, match=f"cut-{path.name}.*(truncated|corrupt)"):
            check_image(bad)


def test_check_image_frames_must_exist(tmp_path):
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    assert check_image(tmp_path / "m.tif", frame=2) == (8, 8)
    with pytest.raises(ImageLoadError, match="3 frame.*frame 3 is out of range"):
        check_image(tmp_path / "m.tif", frame=3)
    rtdose = get_testdata_file("rtdose.dcm")  # 15 frames
    assert check_image(rtdose, frame=14) == load_image(rtdose, frame=14).size
    with pytest.raises(ImageLoadError, match="15 frame"):
        check_image(rtdose, frame=15)
    n = nibabel.as_closest_canonical(nibabel.load(ANATOMICAL)).shape[2]
    assert check_image(ANATOMICAL, frame=n - 1) == load_image(ANATOMICAL, frame=n - 1).size
    with pytest.raises(ImageLoadError, match=f"{n} slices along axis 2; frame {n}"):
        check_image(ANATOMICAL, frame=n)


def test_check_image_keeps_no_full_resolution_copy(tmp_path):
    """A 4096 x 4096 JPEG (48 MiB as RGB) is checked at 1/8 scale: peak memory grows by far less than one copy."""
    import subprocess
    import sys

    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux /proc to read peak memory")
    x = np.arange(4096, dtype=np.uint16)
    Image.fromarray(((x[:, None] ^ x[None, :]) & 255).astype(np.uint8)).convert("RGB").save(tmp_path / "big.jpg")
    code = (
        "import re, sys; from medmo.data.images import check_image, load_image\n"
        # peak RSS of this process image in KiB (getrusage's ru_maxrss would carry the parent's peak over exec)
        "rss = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "before = rss(); size = check_image(sys.argv[1]); checked = rss()\n"
        "load_image(sys.argv[1]); print(size, checked - before, rss() - checked)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.jpg")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    size, checked_kib, loaded_kib = out.stdout.rsplit(" ", 2)
    assert size == "(4096, 4096)"
    assert int(checked_kib) < 8 * 1024 < 40 * 1024 < int(loaded_kib), out.stdout  # load_image holds full copies


def test_corrupt_dicom_is_called_corrupt_not_a_report(tmp_path, caplog):
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (tmp_path / "noise.dcm").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "magic.png").write_bytes(ct[:132] + b"\x00\x01" * 700)  # DICM preamble, then garbage
    (tmp_path / "cut.dcm").write_bytes(ct[:1000])  # cut inside the header, before the pixel data
    for name, expect in (("noise.dcm", "is corrupt or not a DICOM image"), ("magic.png", "is corrupt or not a DICOM image"),
                         ("cut.dcm", "is truncated or corrupt: it is a CT Image Storage object but holds no pixel data")):  # fmt: skip
        for check in (load_image, check_image, image_size):
            with pytest.raises(ImageLoadError) as e:
                check(tmp_path / name)
            assert f"{name} {expect}" in str(e.value) and "re-export" in str(e.value), (check, str(e.value))
            assert "a report" not in str(e.value)
    with pytest.raises(ImageLoadError, match="holds no image: it is a Comprehensive SR Storage object"):
        load_image(get_testdata_file("test-SR.dcm"))
    # A garbled SOP class (here a name) is never quoted.
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    with warnings.catch_warnings():  # pydicom warns (quoting the value) when the test sets it
        warnings.simplefilter("ignore")
        ds.SOPClassUID = "QZNAME^SECRET"
        ds.save_as(tmp_path / "garbled.dcm")
    caplog.clear()  # pydicom also logged that assignment
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError, match="is corrupt or not a DICOM image") as e:
            load_image(tmp_path / "garbled.dcm")
    assert "QZNAME" not in str(e.value) + caplog.text + " ".join(str(w.message) for w in seen)
