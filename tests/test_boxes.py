"""Tests for medmo.boxes: formats, the 0-1000 grid, IoU / GIoU (numpy and torch) and matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo import boxes as B

SIZE = st.integers(min_value=1, max_value=4096)
COORD = st.floats(min_value=-50, max_value=2000, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw, lo=-50.0, hi=1000.0):
    x1 = draw(st.floats(lo, hi, allow_nan=False))
    y1 = draw(st.floats(lo, hi, allow_nan=False))
    w = draw(st.floats(0.01, 500, allow_nan=False))
    h = draw(st.floats(0.01, 500, allow_nan=False))
    return [x1, y1, x1 + w, y1 + h]


@st.composite
def image_and_box(draw):
    w, h = draw(SIZE), draw(SIZE)
    xs = sorted(draw(st.lists(st.floats(0, w), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.floats(0, h), min_size=2, max_size=2)))
    return w, h, [xs[0], ys[0], xs[1], ys[1]]


# ---------------------------------------------------------------------------------------- formats


def test_format_conversions_round_trip():
    box = [10.0, 20.0, 50.0, 80.0]
    assert B.xyxy_to_xywh(box) == [10.0, 20.0, 40.0, 60.0]
    assert B.xywh_to_xyxy([10, 20, 40, 60]) == box
    assert B.xyxy_to_cxcywh(box) == [30.0, 50.0, 40.0, 60.0]
    assert B.cxcywh_to_xyxy([30, 50, 40, 60]) == box
    with pytest.raises(B.BoxError, match="4 numbers"):
        B.xyxy_to_xywh([1, 2, 3])


def test_to_grid_rounds_half_up_and_clamps():
    assert B.to_grid([0, 0, 640, 480], 640, 480) == [0, 0, 1000, 1000]
    # 1/2000 of the side is exactly half a grid cell: rounds up, not to even.
    assert B.to_grid([1, 1, 3, 3], 2000, 2000) == [1, 1, 2, 2]
    assert B.to_grid([-20, -5, 700, 999], 640, 480) == [0, 0, 1000, 1000]
    assert B.to_grid([64, 48, 320, 240], 640, 480) == [100, 100, 500, 500]
    assert B.from_grid([100, 100, 500, 500], 640, 480) == [64.0, 48.0, 320.0, 240.0]


def test_grid_needs_image_size():
    with pytest.raises(B.BoxError, match="image size"):
        B.to_grid([0, 0, 1, 1], None, 10)
    with pytest.raises(B.BoxError, match="image size"):
        B.from_grid([0, 0, 1, 1], 10, 0)


@settings(max_examples=200, deadline=None)
@given(image_and_box())
def test_pixel_grid_pixel_moves_at_most_one_cell(args):
    w, h, box = args
    back = B.from_grid(B.to_grid(box, w, h), w, h)
    cells = [w / 1000, h / 1000, w / 1000, h / 1000]
    for a, b, cell in zip(box, back, cells):
        assert abs(a - b) <= cell * 0.5 + 1e-9


def test_clip_and_sanitize():
    assert B.clip_box([-5, -5, 120, 50], 100, 100) == [0.0, 0.0, 100.0, 50.0]
    assert B.sanitize_box([-5, 10, 120, 50], 100, 100) == [0.0, 10.0, 100.0, 50.0]
    with pytest.raises(B.BoxError, match="empty after clipping"):
        B.sanitize_box([110, 10, 120, 50], 100, 100)
    with pytest.raises(B.BoxError, match="empty after clipping"):
        B.sanitize_box([10, 10, 10, 50], 100, 100)
    with pytest.raises(B.BoxError, match="inverted"):
        B.sanitize_box([50, 10, 20, 50], 100, 100)
    with pytest.raises(B.BoxError, match="non-finite"):
        B.sanitize_box([0, 0, float("nan"), 5], 100, 100)
    assert issubclass(B.BoxError, ValueError)


# ------------------------------------------------------------------------------------ IoU / GIoU


def test_iou_giou_known_values():
    a, b = [0, 0, 2, 2], [1, 1, 3, 3]
    assert B.iou(a, b) == pytest.approx(1 / 7)
    # hull 3x3 = 9, union 7: giou = 1/7 - 2/9
    assert B.giou(a, b) == pytest.approx(1 / 7 - 2 / 9)
    assert B.iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert B.giou([0, 0, 1, 1], [2, 2, 3, 3]) == pytest.approx(0 - (9 - 2) / 9)


@pytest.mark.parametrize("bad", [[5, 5, 5, 9], [5, 5, 2, 9], [0, 0, float("nan"), 1], [1, 2, 3], None, "x"])
def test_degenerate_prediction_scores_worst(bad):
    gold = [0, 0, 10, 10]
    assert B.iou(bad, gold) == 0.0
    assert B.giou(bad, gold) == -1.0


@settings(max_examples=150, deadline=None)
@given(boxes(), boxes())
def test_iou_giou_bounds_and_symmetry(a, b):
    i, g = B.iou(a, b), B.giou(a, b)
    assert 0.0 <= i <= 1.0
    assert -1.0 <= g <= 1.0
    assert g <= i + 1e-12
    assert i == pytest.approx(B.iou(b, a), abs=1e-12)
    assert g == pytest.approx(B.giou(b, a), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(boxes())
def test_self_iou_is_one(a):
    assert B.iou(a, a) == pytest.approx(1.0)
    assert B.giou(a, a) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=6), st.lists(boxes(), min_size=1, max_size=6))
def test_numpy_and_torch_agree(A, Bx):
    torch = pytest.importorskip("torch")
    npi, npg = B.pairwise_iou(A, Bx), B.pairwise_giou(A, Bx)
    ti = B.pairwise_iou(torch.tensor(A, dtype=torch.float64), torch.tensor(Bx, dtype=torch.float64))
    tg = B.pairwise_giou(torch.tensor(A, dtype=torch.float64), torch.tensor(Bx, dtype=torch.float64))
    assert isinstance(ti, torch.Tensor) and ti.shape == (len(A), len(Bx))
    np.testing.assert_allclose(ti.numpy(), npi, atol=1e-9)
    np.testing.assert_allclose(tg.numpy(), npg, atol=1e-9)
    for r in range(len(A)):
        for c in range(len(Bx)):
            assert npi[r, c] == pytest.approx(B.iou(A[r], Bx[c]))


def test_pairwise_shapes_empty_and_degenerate_rows():
    out = B.pairwise_iou(np.zeros((0, 4)), np.array([[0, 0, 1, 1]]))
    assert out.shape == (0, 1)
    m = B.pairwise_giou([[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1]])
    assert m.tolist() == [[1.0], [-1.0]]


def test_torch_giou_is_differentiable():
    torch = pytest.importorskip("torch")
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    loss = 1 - B.pairwise_giou(pred, torch.tensor([[1.0, 1.0, 3.0, 3.0]])).sum()
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------- matching


def test_match_boxes_finds_one_to_one_optimum():
    gold = [[0, 0, 10, 10], [20, 20, 30, 30]]
    pred = [[21, 21, 31, 31], [0, 0, 10, 9], [100, 100, 110, 110]]
    m = B.match_boxes(pred, gold)
    assert m.pairs == [(0, 1), (1, 0)]
    assert m.scores[1] == pytest.approx(0.9)
    assert m.scores[0] == pytest.approx(B.iou(pred[0], gold[1]))
    assert (m.unmatched_pred, m.unmatched_gold) == (1, 0)


def test_match_boxes_beats_greedy():
    # Greedy would give pred0 to gold0 (0.5) leaving pred1 with nothing; Hungarian sums higher.
    gold = [[0, 0, 10, 10], [5, 0, 15, 10]]
    pred = [[2.5, 0, 12.5, 10], [0, 0, 10, 10]]
    m = B.match_boxes(pred, gold)
    assert sorted(m.pairs) == [(0, 1), (1, 0)]
    assert sum(m.scores) == pytest.approx(1.0 + 0.6)


def test_match_boxes_edge_cases():
    assert B.match_boxes([], [[0, 0, 1, 1]]) == B.Matching([], [], 0, 1)
    m = B.match_boxes([[0, 0, 1, 1]], [[5, 5, 6, 6]], min_score=0.5)
    assert m.pairs == [] and (m.unmatched_pred, m.unmatched_gold) == (1, 1)
    g = B.match_boxes([[0, 0, 1, 1]], [[5, 5, 6, 6]], metric="giou")
    assert g.scores[0] < 0
    with pytest.raises(ValueError, match="metric"):
        B.match_boxes([], [], metric="dice")
    assert not math.isnan(B.match_boxes([[1, 2]], [[0, 0, 1, 1]]).scores[0])
    from medmo.answers import parse_boxes

    m = B.match_boxes(parse_boxes("a <box>[[0, 0, 10, 10]]</box>"), np.array([[0, 0, 10, 5]]))
    assert m.pairs == [(0, 0)] and m.scores == [pytest.approx(0.5)]
