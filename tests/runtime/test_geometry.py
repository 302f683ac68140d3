"""Anchors and window against the values stated in the pysot reference note (§2.2) and DaSiamRPN's grid."""

import numpy as np
import pytest

from siamtrt.runtime.geometry import base_anchors, geometry, grid_origin

RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)


def test_base_anchors_match_reference_table():
    wh = base_anchors(8, RATIOS, (8.0,))
    assert wh.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


@pytest.mark.parametrize("s,flavour,origin", [(25, "pysot", -96), (21, "pysot", -80), (19, "dasiamrpn", -72),
                                              (21, "dasiamrpn", -80)])
def test_grid_origin(s, flavour, origin):
    assert grid_origin(s, 8, flavour) == origin
    geo = geometry(s, 8, RATIOS, (8.0,), flavour)
    assert geo.anchors[0, 0] == origin and geo.anchors[0, 1] == origin
    assert geo.anchors[s * s - 1, 0] == -origin  # symmetric grid for odd S


def test_flat_index_layout_pysot_s25():
    a = geometry(25, 8, RATIOS, (8.0,), "pysot").anchors
    assert a.shape == (5 * 625, 4)
    assert a[0].tolist() == [-96, -96, 104, 32]
    assert a[1].tolist() == [-88, -96, 104, 32]  # j + 1 → x + 8
    assert a[25].tolist() == [-96, -88, 104, 32]  # i + 1 → y + 8
    assert a[625].tolist() == [-96, -96, 88, 40]  # a + 1 → next ratio
    k = 2 * 625 + 12 * 25 + 12
    assert a[k].tolist() == [0, 0, 64, 64]  # centre cell, square anchor


def test_window():
    geo = geometry(21, 8, RATIOS, (8.0,), "pysot")
    w = geo.window.reshape(5, 21, 21)
    h = np.hanning(21)
    for a in range(5):
        np.testing.assert_array_equal(w[a], np.outer(h, h))
    assert w[:, 10, 10].tolist() == [1.0] * 5 and w[:, 0, :].max() == 0


def test_geometry_cached_and_read_only():
    g1 = geometry(25, 8, RATIOS, (8.0,), "pysot")
    assert geometry(25, 8, RATIOS, (8.0,), "pysot") is g1
    with pytest.raises(ValueError):
        g1.window[0] = 1.0
    np.testing.assert_array_equal(g1.aw, g1.anchors[:, 2])
