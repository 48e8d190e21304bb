"""Dynamic-resolution checks. The expected grids are the paper's own examples (BlueLM-V-3B, Sec. 3.2 and
Fig. 3/4: tiles of 384, LLaVA-NeXT vs relaxed aspect-ratio matching)."""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiling  # noqa: E402


def test_paper_examples():
    assert tiling.select_grid(380, 393, 384, 16, "llava_next") == (1, 2)
    assert tiling.select_grid(380, 393, 384, 16, "relaxed") == (1, 1)
    assert tiling.select_grid(394, 390, 384, 16, "llava_next") == (2, 2)
    assert tiling.select_grid(394, 390, 384, 16, "relaxed") == (1, 1)
    assert tiling.select_grid(500, 102, 384, 16, "relaxed") == (2, 1)
    assert tiling.select_grid(768, 1536, 384, 16, "relaxed") == (2, 4)


def test_nano_shapes():
    cfg = tiling.TilingConfig()
    assert tiling.select_grid(256, 64, 64, 4) == (4, 1)     # a wide banner gets 4 tiles across
    assert tiling.select_grid(64, 256, 64, 4) == (1, 4)
    assert tiling.select_grid(64, 64, 64, 4) == (1, 1)
    assert tiling.select_grid(120, 50, 64, 4) == (2, 1)
    assert tiling.select_grid(30, 20, 64, 4, "single") == (1, 1)
    assert cfg.alpha == float(np.float32(0.1))


def test_tiles_order_and_thumbnail():
    # a 128x64 image whose left half is red and right half blue → 2x1 grid, then a thumbnail
    a = np.zeros((64, 128, 3), np.uint8)
    a[:, :64, 0] = 255
    a[:, 64:, 2] = 255
    (m, n), tiles = tiling.image_to_tiles(Image.fromarray(a), tiling.TilingConfig())
    assert (m, n) == (2, 1) and tiles.shape == (3, 64, 64, 3)
    assert tiles[0, :, :, 0].min() == 255 and tiles[1, :, :, 2].min() == 255
    # the thumbnail is the whole image letterboxed into one tile: black bars top and bottom
    assert (tiles[2, 0] == 127).all() and tiles[2, 32, 5, 0] > 200 and tiles[2, 32, 60, 2] > 200


def test_single_tile_has_no_thumbnail():
    (m, n), tiles = tiling.image_to_tiles(Image.new("RGB", (60, 60), (9, 9, 9)), tiling.TilingConfig())
    assert (m, n) == (1, 1) and tiles.shape[0] == 1


def test_resize_and_pad_centres():
    img = tiling.resize_and_pad(Image.new("RGB", (100, 50), (255, 255, 255)), 64, 64, (0, 0, 0))
    a = np.asarray(img)
    assert a[0].max() == 0 and a[-1].max() == 0          # 64x32 content, 16 rows of padding each side
    assert a[16:48].min() == 255


def test_candidate_order_matches_engine():
    assert tiling.candidates(4) == [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1)]


def test_layout():
    L = tiling.layout(2, 2, True)
    assert L == ["<image>", 0, "<tile>", 1, "<row>", 2, "<tile>", 3, "<row>", 4, "</image>"]
    assert tiling.layout(1, 1, False) == ["<image>", 0, "</image>"]
    assert tiling.layout(1, 3, True) == ["<image>", 0, "<row>", 1, "<row>", 2, "<row>", 3, "</image>"]


def test_normalize():
    x = tiling.normalize(np.full((1, 2, 2, 3), 255, np.uint8), tiling.TilingConfig())
    assert x.shape == (1, 3, 2, 2) and np.allclose(x, 1.0)
