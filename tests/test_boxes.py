from __future__ import annotations

import warnings

import numpy as np
import pytest

from clipcam_utils.boxes import (
    box_area,
    box_iou,
    boxes_to_mask,
    clip_box,
    from_relative_xywh,
    mask_iou,
    mask_to_box,
    resize_saliency,
    saliency_to_box,
    threshold_saliency,
    to_relative_xywh,
    union_box,
    validate_beta,
    validate_box,
)

# --- validate_beta -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0, 0.0, 0.2, 0.3, 1, 1.0, np.float32(0.25)])
def test_validate_beta_accepts_numbers_in_unit_interval(beta: float) -> None:
    assert validate_beta(beta) == pytest.approx(float(beta))
    assert type(validate_beta(beta)) is float


@pytest.mark.parametrize("beta", [-0.01, 1.5, float("nan"), float("inf")])
def test_validate_beta_rejects_out_of_range_and_nan(beta: float) -> None:
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\].*0\.2 for ResNets and 0\.3 for ViTs"):
        validate_beta(beta)


@pytest.mark.parametrize("beta", [True, False, np.bool_(True), "0.3", None])
def test_validate_beta_rejects_bool_and_non_numbers(beta: object) -> None:
    with pytest.raises(ValueError, match="beta must be a real number"):
        validate_beta(beta)  # type: ignore[arg-type]


# --- resize_saliency ---------------------------------------------------------------------------------------


def test_resize_saliency_shape_is_height_width_and_float32() -> None:
    resized = resize_saliency(np.random.default_rng(0).random((7, 7)), size=(30, 20))
    assert resized.shape == (20, 30)
    assert resized.dtype == np.float32


def test_resize_saliency_known_bilinear_values() -> None:
    # align_corners=False: output pixel i samples source x = (i + 0.5) / 2 - 0.5, clamped at the border.
    resized = resize_saliency(np.array([[0.0, 1.0]]), size=(4, 1))
    np.testing.assert_allclose(resized, [[0.0, 0.25, 0.75, 1.0]])
    corner = resize_saliency(np.array([[0.0, 0.0], [0.0, 1.0]]), size=(4, 4))
    assert corner[1, 1] == pytest.approx(0.0625)
    assert corner[2, 2] == pytest.approx(0.5625)
    assert corner[3, 3] == pytest.approx(1.0)


def test_resize_saliency_same_size_is_identity() -> None:
    saliency = np.random.default_rng(1).random((5, 8)).astype(np.float32)
    np.testing.assert_allclose(resize_saliency(saliency, (8, 5)), saliency, rtol=0, atol=1e-7)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((1, 4, 4)), np.zeros((0, 3))])
def test_resize_saliency_rejects_non_2d(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty 2-D"):
        resize_saliency(bad, (4, 4))


@pytest.mark.parametrize("size", [(0, 4), (4, -1), (4,), (4.0, 4), (True, 4)])
def test_resize_saliency_rejects_bad_size(size: tuple) -> None:
    with pytest.raises(ValueError, match=r"size must be \(width, height\)"):
        resize_saliency(np.zeros((2, 2)), size)


# --- threshold_saliency ------------------------------------------------------------------------------------


def test_threshold_is_strict() -> None:
    saliency = np.array([[0.2, 0.2000001], [0.0, 1.0]])
    mask = threshold_saliency(saliency, 0.2)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, True], [False, True]])


def test_threshold_does_not_renormalise_valid_map() -> None:
    # Max is 0.5: renormalising to [0, 1] would put 0.4 above 0.6.
    saliency = np.array([[0.1, 0.4], [0.5, 0.2]])
    np.testing.assert_array_equal(threshold_saliency(saliency, 0.6), np.zeros((2, 2), dtype=bool))
    np.testing.assert_array_equal(threshold_saliency(saliency, 0.3), [[False, True], [True, False]])


@pytest.mark.parametrize(
    ("saliency", "message"),
    [
        (np.zeros((4, 4)), "all zeros"),
        (np.full((4, 4), 0.7), "constant"),
        (np.array([[0.1, np.nan], [0.5, 1.0]]), "NaN or inf"),
        (np.array([[0.1, np.inf], [0.5, 1.0]]), "NaN or inf"),
    ],
)
def test_degenerate_map_warns_and_gives_no_box(saliency: np.ndarray, message: str) -> None:
    with pytest.warns(RuntimeWarning, match=message):
        mask = threshold_saliency(saliency, 0.3)
    np.testing.assert_array_equal(mask, np.zeros(saliency.shape, dtype=bool))
    with pytest.warns(RuntimeWarning, match=message):
        assert saliency_to_box(saliency, 0.3) is None
    with pytest.warns(RuntimeWarning, match=message):
        assert saliency_to_box(saliency, 0.3, size=(8, 6)) is None


def test_nearly_constant_map_counts_as_constant_but_small_real_range_does_not() -> None:
    with pytest.warns(RuntimeWarning, match="constant"):
        assert not threshold_saliency(np.array([[0.7, 0.7 + 1e-7]]), 0.3).any()
    np.testing.assert_array_equal(threshold_saliency(np.array([[0.3, 0.3 + 1e-5]]), 0.3), [[False, True]])


def test_threshold_validates_beta() -> None:
    with pytest.raises(ValueError, match="beta must be in"):
        threshold_saliency(np.eye(3), 2.0)


# --- mask_to_box -------------------------------------------------------------------------------------------


def test_mask_to_box_empty_mask_is_none() -> None:
    assert mask_to_box(np.zeros((5, 7), dtype=bool)) is None


def test_mask_to_box_full_mask_covers_image() -> None:
    assert mask_to_box(np.ones((5, 7), dtype=bool)) == (0.0, 0.0, 7.0, 5.0)


def test_mask_to_box_single_pixel_is_exclusive() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[5, 3] = True
    box = mask_to_box(mask)
    assert box == (3.0, 5.0, 4.0, 6.0)
    assert box_area(box) == 1.0


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        (0, 4, (4.0, 0.0, 5.0, 1.0)),  # top border
        (5, 0, (0.0, 5.0, 1.0, 6.0)),  # left border
        (2, 7, (7.0, 2.0, 8.0, 3.0)),  # right border
        (5, 4, (4.0, 5.0, 5.0, 6.0)),  # bottom border
        (5, 7, (7.0, 5.0, 8.0, 6.0)),  # bottom-right corner
    ],
)
def test_mask_to_box_touching_borders(row: int, column: int, expected: tuple) -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[row, column] = True
    assert mask_to_box(mask) == expected


def test_mask_to_box_spans_scattered_pixels() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1, 6] = True
    mask[4, 2] = True
    assert mask_to_box(mask) == (2.0, 1.0, 7.0, 5.0)


def test_mask_to_box_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="mask must be a 2-D"):
        mask_to_box(np.zeros((2, 2, 2), dtype=bool))


def test_saliency_to_box_resizes_then_thresholds() -> None:
    saliency = np.zeros((2, 2))
    saliency[1, 1] = 1.0
    # Upsampled 2x2 -> 4x4, values > 0.5 are 0.5625 at (2, 2), 0.75 at (2, 3)/(3, 2), 1 at (3, 3).
    assert saliency_to_box(saliency, 0.5, size=(4, 4)) == (2.0, 2.0, 4.0, 4.0)
    assert saliency_to_box(saliency, 0.5) == (1.0, 1.0, 2.0, 2.0)


def test_saliency_to_box_with_no_pixel_above_beta_is_none_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert saliency_to_box(np.array([[0.0, 0.5], [0.25, 0.1]]), 0.5) is None


# --- validate_box, box_area, box_iou -----------------------------------------------------------------------


def test_validate_box_returns_floats() -> None:
    assert validate_box((1, 2, 3, 4), size=(3, 4)) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((3, 0, 1, 2), "inverted"),
        ((0, 3, 2, 1), "inverted"),
        ((0, float("nan"), 2, 2), "finite"),
        ((0, 0, float("inf"), 2), "finite"),
        ((0, 0, 2), "four numbers"),
        (("0", 0, 2, 2), "four numbers"),
    ],
)
def test_validate_box_rejects_bad_boxes(box: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_box(box)


@pytest.mark.parametrize("box", [(-1, 0, 2, 2), (0, -0.5, 2, 2), (0, 0, 11, 2), (0, 0, 2, 8.5)])
def test_validate_box_rejects_out_of_image(box: tuple) -> None:
    with pytest.raises(ValueError, match="outside the 10x8 image; use clip_box"):
        validate_box(box, size=(10, 8))


def test_box_area() -> None:
    assert box_area((1, 2, 4, 7)) == 15.0
    assert box_area((1.5, 0, 2, 0.5)) == 0.25
    assert box_area((2, 2, 2, 5)) == 0.0
    assert box_area(None) == 0.0


def test_box_iou_hand_made_cases() -> None:
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 2, 2), (3, 3, 5, 5)) == 0.0
    assert box_iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0  # touching edges share no area
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == 0.25
    assert box_iou((0, 0, 1, 1), (0.5, 0.5, 1.5, 1.5)) == pytest.approx(0.25 / 1.75)


def test_box_iou_none_and_zero_area() -> None:
    assert box_iou(None, (0, 0, 2, 2)) == 0.0
    assert box_iou((0, 0, 2, 2), None) == 0.0
    assert box_iou(None, None) == 0.0
    assert box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0


def test_box_iou_is_symmetric() -> None:
    a, b = (0.0, 1.0, 5.0, 4.0), (2.0, 0.0, 6.0, 3.0)
    assert box_iou(a, b) == box_iou(b, a) == pytest.approx(6 / 21)


def test_box_iou_rejects_inverted_box() -> None:
    with pytest.raises(ValueError, match="inverted"):
        box_iou((2, 0, 0, 2), (0, 0, 2, 2))


# --- boxes_to_mask, mask_iou -------------------------------------------------------------------------------


def test_boxes_to_mask_single_integer_box() -> None:
    mask = boxes_to_mask([(3, 5, 4, 6)], size=(8, 7))
    assert mask.shape == (7, 8)
    assert mask.dtype == bool
    assert mask.sum() == 1
    assert mask[5, 3]


def test_boxes_to_mask_union_of_overlapping_boxes() -> None:
    mask = boxes_to_mask([(0, 0, 2, 2), (1, 1, 3, 3), None], size=(4, 4))
    expected = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_boxes_to_mask_empty_list_is_empty() -> None:
    np.testing.assert_array_equal(boxes_to_mask([], size=(3, 2)), np.zeros((2, 3), dtype=bool))


@pytest.mark.parametrize(
    ("x1", "x2", "expected"),
    [
        (0.4, 1.6, [True, True, False]),
        (0.6, 1.4, [False, False, False]),  # covers no pixel centre
        (0.5, 1.5, [True, False, False]),  # centre on x1 is inside, centre on x2 is outside
        (0.0, 3.0, [True, True, True]),
    ],
)
def test_boxes_to_mask_fractional_coordinates_use_pixel_centres(x1: float, x2: float, expected: list) -> None:
    np.testing.assert_array_equal(boxes_to_mask([(x1, 0.0, x2, 1.0)], size=(3, 1))[0], expected)


def test_boxes_to_mask_crops_boxes_outside_the_image() -> None:
    mask = boxes_to_mask([(-5, -5, 1, 1), (10, 10, 20, 20)], size=(3, 3))
    assert mask.sum() == 1
    assert mask[0, 0]


def test_boxes_to_mask_round_trips_mask_to_box() -> None:
    mask = boxes_to_mask([(2, 1, 5, 4)], size=(8, 6))
    assert mask_to_box(mask) == (2.0, 1.0, 5.0, 4.0)


def test_mask_iou() -> None:
    a = boxes_to_mask([(0, 0, 2, 2)], size=(4, 4))
    b = boxes_to_mask([(1, 0, 3, 2)], size=(4, 4))
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    empty = np.zeros((4, 4), dtype=bool)
    assert mask_iou(empty, empty) == 0.0
    assert mask_iou(a, empty) == 0.0


def test_mask_iou_matches_box_iou_for_integer_boxes() -> None:
    a, b = (0, 1, 5, 4), (2, 0, 6, 3)
    masks = boxes_to_mask([a], (6, 4)), boxes_to_mask([b], (6, 4))
    assert mask_iou(*masks) == pytest.approx(box_iou(a, b))


def test_mask_iou_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(3, 2\)"):
        mask_iou(np.ones((2, 3), dtype=bool), np.ones((3, 2), dtype=bool))


# --- clip_box, relative xywh, union_box --------------------------------------------------------------------


def test_clip_box() -> None:
    assert clip_box((-3, 2, 12, 9), size=(10, 8)) == (0.0, 2.0, 10.0, 8.0)
    assert clip_box((1, 1, 3, 3), size=(10, 8)) == (1.0, 1.0, 3.0, 3.0)
    assert box_area(clip_box((12, 0, 15, 4), size=(10, 8))) == 0.0


def test_to_relative_xywh() -> None:
    assert to_relative_xywh((20, 10, 60, 40), size=(200, 100)) == [0.1, 0.1, 0.2, 0.3]


def test_from_relative_xywh() -> None:
    assert from_relative_xywh([0.1, 0.1, 0.2, 0.3], size=(200, 100)) == pytest.approx((20, 10, 60, 40))


def test_relative_xywh_round_trip() -> None:
    size = (640, 427)
    box = (13.5, 7.25, 600.0, 427.0)
    assert from_relative_xywh(to_relative_xywh(box, size), size) == pytest.approx(box)


def test_to_relative_xywh_rejects_box_outside_image() -> None:
    with pytest.raises(ValueError, match="use clip_box"):
        to_relative_xywh((0, 0, 250, 50), size=(200, 100))


@pytest.mark.parametrize("xywh", [[0.1, 0.1, -0.2, 0.3], [0.1, float("nan"), 0.2, 0.3], [0.1, 0.2, 0.3]])
def test_from_relative_xywh_rejects_bad_input(xywh: list) -> None:
    with pytest.raises(ValueError, match="xywh"):
        from_relative_xywh(xywh, size=(200, 100))


def test_union_box() -> None:
    human, obj = (10, 20, 50, 90), (40, 5, 80, 60)
    assert union_box([human, obj]) == (10.0, 5.0, 80.0, 90.0)
    assert union_box([human, None]) == (10.0, 20.0, 50.0, 90.0)
    assert union_box([]) is None
    assert union_box([None, None]) is None


def test_union_box_rejects_inverted_box() -> None:
    with pytest.raises(ValueError, match="inverted"):
        union_box([(0, 0, 2, 2), (5, 5, 1, 1)])
