"""Dynamic resolution: grid choice (BlueLM-V-3B relaxed aspect-ratio matching, Algorithm 1), resize and
pad, tiles + thumbnail, and the marker-token layout of one image. docs/FORMAT.md section 2 is the
specification; src/vision mirrors this file in C++."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

START, END, TILE_SEP, ROW_SEP = "<image>", "</image>", "<tile>", "<row>"


@dataclass(frozen=True)
class TilingConfig:
    tile: int = 64
    max_tiles: int = 4
    policy: str = "relaxed"          # relaxed | llava_next | single
    alpha: float = float(np.float32(0.1))   # the f32 GGUF key widened to double, as the engine sees it
    thumbnail: bool = True
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)


def candidates(max_tiles: int):
    """(m columns, n rows) in the order the search visits them: ascending m·n, then ascending m (the
    order of src/vision/dynamic_resolution: each step up in tiles must pay for itself)."""
    c = [(m, n) for m in range(1, max_tiles + 1) for n in range(1, max_tiles + 1) if m * n <= max_tiles]
    return sorted(c, key=lambda g: (g[0] * g[1], g[0]))


def select_grid(w0: int, h0: int, tile: int, max_tiles: int, policy: str = "relaxed",
                alpha: float = float(np.float32(0.1)), cands=None):
    if w0 <= 0 or h0 <= 0:
        raise ValueError(f"image size {w0}x{h0} is empty")
    if policy == "single":
        return (1, 1)
    if policy not in ("relaxed", "llava_next"):
        raise ValueError(f"unknown tiling policy {policy!r}")
    cands = cands if cands is not None else candidates(max_tiles)
    best, re_max, rw_min = None, 0, math.inf
    for m, n in cands:
        W, H = tile * m, tile * n
        scale = min(W / w0, H / h0)
        re = min(int(math.floor(w0 * scale)) * int(math.floor(h0 * scale)), w0 * h0)
        rw = W * H - re
        if policy == "relaxed":
            take = (re - re_max) > alpha * re_max or ((re_max - re) < alpha * re_max and rw < rw_min)
        else:
            take = re > re_max or (re == re_max and rw < rw_min)
        if take or (policy == "llava_next" and best is None):
            best, re_max, rw_min = (m, n), re, rw
    if best is None:   # every Re was 0 (a sliver of an image): fall back to LLaVA-NeXT's choice
        return select_grid(w0, h0, tile, max_tiles, "llava_next", alpha, cands)
    return best


def pad_rgb(mean):
    """LLaVA's expand2square colour: int(255·mean) per channel (127 for SigLIP's 0.5)."""
    return tuple(int(m * 255) for m in mean)


def fit_box(w0: int, h0: int, W: int, H: int):
    """Where resize_and_pad puts a w0×h0 image on a W×H canvas: (width, height, left, top)."""
    sw, sh = W / w0, H / h0
    if sw < sh:
        nw, nh = W, min(math.ceil(h0 * sw), H)
    else:
        nh, nw = H, min(math.ceil(w0 * sh), W)
    nw, nh = max(nw, 1), max(nh, 1)
    return nw, nh, (W - nw) // 2, (H - nh) // 2


def resize_and_pad(img: Image.Image, W: int, H: int, pad=(127, 127, 127)) -> Image.Image:
    """LLaVA-NeXT resize_and_pad_image, with its float64 arithmetic."""
    nw, nh, left, top = fit_box(img.width, img.height, W, H)
    resized = img if (nw, nh) == img.size else img.resize((nw, nh), Image.BICUBIC)
    canvas = Image.new("RGB", (W, H), pad)
    canvas.paste(resized, (left, top))
    return canvas


def image_to_tiles(img: Image.Image, cfg: TilingConfig):
    """Returns ((m, n), uint8 array [n_tiles, T, T, 3]) in engine order: grid row-major, thumbnail last."""
    img = img.convert("RGB")
    m, n = select_grid(img.width, img.height, cfg.tile, cfg.max_tiles, cfg.policy, cfg.alpha)
    T = cfg.tile
    pad = pad_rgb(cfg.mean)
    canvas = np.asarray(resize_and_pad(img, T * m, T * n, pad))
    tiles = [canvas[r * T:(r + 1) * T, c * T:(c + 1) * T] for r in range(n) for c in range(m)]
    if m * n > 1 and cfg.thumbnail:
        tiles.append(np.asarray(resize_and_pad(img, T, T, pad)))
    return (m, n), np.stack(tiles)


def glyph_labels(glyphs, size, grid, cfg: TilingConfig, patch: int, n_tiles: int) -> np.ndarray:
    """Per-patch labels for the glyph loss: [n_tiles, g, g] (g = tile / patch, tiles in image_to_tiles'
    order), each patch labelled with the class of the character whose box holds the patch's centre, 0
    where none does. glyphs: (class, x0, y0, x1, y1) in image pixels (data.draw_text)."""
    (w0, h0), (m, n), T = size, grid, cfg.tile
    g = T // patch
    labels = np.zeros((n_tiles, g, g), np.int64)
    views = [(m, n, [(r, c) for r in range(n) for c in range(m)])]
    if n_tiles > m * n:
        views.append((1, 1, [None]))                # the thumbnail: the whole image on one tile
    k = 0
    for vm, vn, cells in views:
        nw, nh, left, top = fit_box(w0, h0, T * vm, T * vn)
        full = np.zeros((vn * g, vm * g), np.int64)
        centre_y = (np.arange(vn * g) + 0.5) * patch
        centre_x = (np.arange(vm * g) + 0.5) * patch
        for cls, x0, y0, x1, y1 in glyphs:
            rows = (centre_y >= top + y0 * nh / h0) & (centre_y < top + y1 * nh / h0)
            cols = (centre_x >= left + x0 * nw / w0) & (centre_x < left + x1 * nw / w0)
            full[np.ix_(rows, cols)] = cls
        for cell in cells:
            r, c = cell if cell is not None else (0, 0)
            labels[k] = full[r * g:(r + 1) * g, c * g:(c + 1) * g]
            k += 1
    return labels


def normalize(tiles_u8: np.ndarray, cfg: TilingConfig) -> np.ndarray:
    """uint8 [N, T, T, 3] → float32 [N, 3, T, T]."""
    x = tiles_u8.astype(np.float32) / 255.0
    x = (x - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def layout(m: int, n: int, has_thumbnail: bool):
    """The image's token sequence: strings are marker tokens, ints are tile indices (each tile = its
    merged embeddings)."""
    seq = [START]
    for r in range(n):
        for c in range(m):
            if r > 0 and c == 0:
                seq.append(ROW_SEP)
            elif c > 0:
                seq.append(TILE_SEP)
            seq.append(r * m + c)
    if has_thumbnail:
        seq += [ROW_SEP, m * n]
    seq.append(END)
    return seq
