"""Scoring hand-made cases gives the numbers worked out by hand."""

from __future__ import annotations

import numpy as np

from gridwatch.evaluation.scoring import (
    ScoredBoxes,
    ap50,
    at_least_wide,
    count_errors,
    precision_recall,
)

TARGETS = ScoredBoxes(np.array([[0, 0, 50, 50], [100, 100, 150, 150], [200, 0, 260, 60]],
                               dtype=float))


def test_two_of_three_found_and_one_false_box() -> None:
    preds = ScoredBoxes(np.array([[1, 1, 50, 50],          # hit (IoU 0.96)
                                  [105, 105, 150, 150],    # hit (IoU 0.81)
                                  [400, 400, 450, 450]],   # nothing there
                                 dtype=float), np.array([0.9, 0.8, 0.7]))
    figures = precision_recall([preds], [TARGETS])
    assert figures["recall"] == round(2 / 3, 4)
    assert figures["precision"] == round(2 / 3, 4)
    assert figures["targets"] == 3
    assert figures["medium"]["targets"] == 3 and figures["small"]["targets"] == 0


def test_a_box_that_overlaps_too_little_is_no_hit() -> None:
    preds = ScoredBoxes(np.array([[25, 25, 75, 75]], dtype=float), np.array([0.9]))
    figures = precision_recall([preds], [TARGETS])
    assert figures["recall"] == 0.0 and figures["precision"] == 0.0


def test_ap50_is_one_when_the_best_ranked_boxes_are_the_hits() -> None:
    preds = ScoredBoxes(np.vstack([TARGETS.boxes, [[400, 400, 450, 450]]]),
                        np.array([0.9, 0.8, 0.7, 0.1]))
    assert ap50([preds], [TARGETS])["all"] == 1.0
    # The false box ranked first: precision 0.5, 0.67, 0.75 at the three recalls; COCO's
    # envelope (the best precision at any higher recall) makes it 0.75 throughout.
    worse = ScoredBoxes(preds.boxes, np.array([0.5, 0.4, 0.3, 0.9]))
    assert ap50([worse], [TARGETS])["all"] == 0.75


def test_narrow_targets_and_their_boxes_are_ignored_both_ways() -> None:
    targets = ScoredBoxes(np.array([[0, 0, 10, 10], [100, 100, 140, 130]], dtype=float))
    preds = ScoredBoxes(np.array([[0, 0, 10, 10], [300, 300, 320, 320]], dtype=float),
                        np.array([0.9, 0.8]))
    kept_preds, kept_targets = at_least_wide(preds, targets, 16)
    assert kept_targets.boxes.tolist() == [[100, 100, 140, 130]]
    assert kept_preds.boxes.tolist() == [[300, 300, 320, 320]]
    figures = precision_recall([kept_preds], [kept_targets])
    assert figures["recall"] == 0.0 and figures["precision"] == 0.0


def test_count_error_is_a_fraction_of_the_true_count_per_image() -> None:
    result = count_errors([("a", 10, 8), ("b", 20, 23)])
    assert result["mean_abs_error_fraction"] == 0.175   # (0.2 + 0.15) / 2
    assert result["pooled_abs_error_fraction"] == round(5 / 30, 4)
    assert result["mean_signed_error_fraction"] == -0.025
    assert [r["error"] for r in result["per_image"]] == [-0.2, 0.15]
