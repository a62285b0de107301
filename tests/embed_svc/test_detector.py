"""BlazeFace post-processing on synthetic network outputs: anchors, decoding, NMS, letterbox."""

from __future__ import annotations

import numpy as np
import pytest

from embed_svc import catalog
from embed_svc.detector import Letterbox, ScoreCalibration, anchor_centres, decode, letterbox


def test_anchor_grid_matches_the_back_model() -> None:
    anchors = anchor_centres()
    assert anchors.shape == (896, 2)
    # First 512: 16x16 cells, 2 anchors each; then 8x8 cells, 6 each.
    assert anchors[0] == pytest.approx((0.5 / 16, 0.5 / 16))
    assert anchors[1] == pytest.approx(anchors[0])
    assert anchors[2] == pytest.approx((1.5 / 16, 0.5 / 16))
    assert anchors[512] == pytest.approx((0.5 / 8, 0.5 / 8))
    assert anchors[517] == pytest.approx(anchors[512])
    assert anchors[518] == pytest.approx((1.5 / 8, 0.5 / 8))
    assert anchors[-1] == pytest.approx((7.5 / 8, 7.5 / 8))


def _outputs(entries: list[tuple[int, float, tuple[float, float, float, float]]]) -> tuple:
    """Raw outputs with the given (anchor, logit, (dx, dy, w, h)) entries set."""
    regressors = np.zeros((896, 16), dtype=np.float32)
    scores = np.full((896, 1), -20.0, dtype=np.float32)
    for anchor, logit, (dx, dy, w, h) in entries:
        regressors[anchor, :4] = (dx, dy, w, h)
        # keypoints: at the box centre shifted by k pixels
        regressors[anchor, 4:] = np.repeat(np.arange(6, dtype=np.float32), 2) + np.tile([dx, dy], 6)
        scores[anchor, 0] = logit
    return regressors, scores


IDENTITY = Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0)


def test_one_confident_anchor_gives_one_box_around_its_centre() -> None:
    anchor = 16 * 2 * 8 + 2 * 8  # cell (8, 8) of the 16x16 grid: centre (136, 136)
    regressors, scores = _outputs([(anchor, 5.0, (4.0, -2.0, 40.0, 60.0))])
    found = decode(regressors, scores, IDENTITY, threshold=0.5)
    assert len(found) == 1
    box = found[0].box
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((120, 104, 160, 164))
    assert found[0].score == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert found[0].keypoints.shape == (6, 2)
    assert found[0].keypoints[0] == pytest.approx((140.0, 134.0))
    assert found[0].keypoints[5] == pytest.approx((145.0, 139.0))


def test_scores_below_the_threshold_are_dropped() -> None:
    regressors, scores = _outputs([(100, 0.0, (0, 0, 30, 30))])  # sigmoid(0) = 0.5
    assert decode(regressors, scores, IDENTITY, threshold=0.51) == []
    assert len(decode(regressors, scores, IDENTITY, threshold=0.5)) == 1


def test_a_zoomed_out_pass_keeps_only_large_boxes() -> None:
    from embed_svc import detector

    small = 0.1 * detector.INPUT_SIZE
    large = 0.3 * detector.INPUT_SIZE
    regressors, scores = _outputs(
        [(100, 5.0, (0, 0, small, small)), (600, 5.0, (0, 0, large, large))]
    )
    kept = detector.candidates(regressors, scores, IDENTITY, 0.5, detector.min_width(0.5))
    assert kept.boxes[:, 2] - kept.boxes[:, 0] == pytest.approx([large])
    every = detector.candidates(regressors, scores, IDENTITY, 0.5, detector.min_width(1.0))
    assert len(every.scores) == 2


def test_overlapping_candidates_merge_weighted_by_score() -> None:
    anchor = 16 * 2 * 8 + 2 * 8
    regressors, scores = _outputs(
        [(anchor, 3.0, (0, 0, 40, 40)), (anchor + 1, 3.0, (4.0, 0, 40, 40))]
    )
    found = decode(regressors, scores, IDENTITY, threshold=0.5)
    assert len(found) == 1
    # Equal scores: the merged box is the mean of the two.
    assert found[0].box.x_min == pytest.approx(136 - 20 + 2)


def test_distant_faces_stay_separate_and_best_first() -> None:
    regressors, scores = _outputs(
        [(0, 2.0, (0, 0, 10, 10)), (510, 4.0, (0, 0, 10, 10)), (895, 3.0, (0, 0, 30, 30))]
    )
    found = decode(regressors, scores, IDENTITY, threshold=0.5)
    assert [round(f.score, 3) for f in found] == [0.982, 0.953, 0.881]


def test_letterbox_maps_back_to_image_pixels() -> None:
    image = np.zeros((300, 600, 3), dtype=np.uint8)
    image[100:200, 200:300] = 255  # a white square
    canvas, fit = letterbox(image)
    assert canvas.shape == (256, 256, 3)
    assert canvas.dtype == np.uint8 and canvas.flags.c_contiguous
    assert canvas.min() == 0 and canvas.max() == 255
    assert fit.scale == pytest.approx(256 / 600)
    assert fit.pad_x == 0 and fit.pad_y == (256 - 128) // 2
    # The square's centre (250, 150) in image pixels is white on the canvas.
    x = round(250 * fit.scale + fit.pad_x)
    y = round(150 * fit.scale + fit.pad_y)
    assert (canvas[y, x] == 255).all()
    # A detection at that point decodes back to the image point.
    cell_x, cell_y = x // 16, y // 16
    anchor = (cell_y * 16 + cell_x) * 2
    centre = ((cell_x + 0.5) * 16, (cell_y + 0.5) * 16)
    regressors, scores = _outputs([(anchor, 5.0, (x - centre[0], y - centre[1], 20, 20))])
    (found,) = decode(regressors, scores, fit, threshold=0.5)
    cx = (found.box.x_min + found.box.x_max) / 2
    cy = (found.box.y_min + found.box.y_max) / 2
    assert (cx, cy) == pytest.approx((x / fit.scale, (y - fit.pad_y) / fit.scale))
    assert found.box.width == pytest.approx(20 / fit.scale)


def test_score_calibration_is_monotone_and_inverts() -> None:
    calibration = ScoreCalibration(raw=(0.0, 0.5, 0.8, 1.0), probability=(0.0, 0.6, 0.9, 0.99))
    assert calibration.calibrated(0.5) == pytest.approx(0.6)
    assert calibration.calibrated(0.65) == pytest.approx(0.75)
    for probability in (0.1, 0.6, 0.8, 0.95):
        raw = calibration.raw_at(probability)
        assert calibration.calibrated(raw) == pytest.approx(probability)
    # Beyond the last knot no raw score reaches the probability.
    assert calibration.raw_at(0.999) == 1.0
    with pytest.raises(ValueError, match="increasing"):
        ScoreCalibration(raw=(0.0, 0.5, 0.5, 1.0), probability=(0.0, 0.5, 0.6, 1.0))


def test_published_calibration_covers_every_raw_score() -> None:
    calibration = catalog.DETECTOR.calibration
    assert calibration.raw[0] == 0.0 and calibration.raw[-1] == 1.0
    assert calibration.probability[0] >= 0.0 and calibration.probability[-1] <= 1.0
