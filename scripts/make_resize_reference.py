#!/usr/bin/python3
"""Writes the small reference fixtures of the image path into tests/fixtures/images/.

Every expected image here is produced by PIL (Debian python3-pil, Pillow 9.4), the reference the
C++ code must match:
  resize_src.png, resize_src2.png          sources (pseudo-random texture with hard edges, so that
                                           the bicubic overshoot is clamped somewhere)
  resize_<src>_<w>x<h>.png                 PIL Image.resize((w, h), Image.BICUBIC) of that source
  orient_src.png, orient_<n>.png           ImageOps.exif_transpose of the source tagged with EXIF
                                           orientation n (1..8), read back from a PNG eXIf chunk
  exif6.jpg                                a JPEG written by PIL with EXIF orientation 6 (four
                                           flat colour quadrants, so lossy decoding stays near)
  fmt_*                                    one small file per supported format/pixel layout and
                                           fmt_*.expected.png, the 8-bit RGB it must decode to
                                           (alpha composited on white, 16 bits rounded to 8)
  pipeline_*                               LLaVA-NeXT style resize+pad and InternVL style stretch
                                           of resize_src.png into tiles, done in PIL
  grid_reference.txt                       grids chosen by Python transcriptions of LLaVA-NeXT's
                                           select_best_resolution, InternVL-1.5's
                                           find_closest_aspect_ratio (with its own target_ratios
                                           construction) and the paper's Algorithm 1, for random sizes
Run:  /usr/bin/python3 scripts/make_resize_reference.py   (from the repository root)
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "images")
RESAMPLE = Image.BICUBIC


def texture(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 2 * 255], -1)
    noise = rng.integers(0, 256, size=(h, w, 3))
    img = np.where(((x // 5 + y // 4) % 3 == 0)[..., None], noise, base)
    img[h // 3: h // 3 + 3, :, :] = [255, 255, 255]  # hard white bar next to dark pixels
    img[:, w // 2, :] = 0
    return Image.fromarray(img.astype(np.uint8), "RGB")


def png16(path, arr, color_type):
    """Minimal PNG writer for 16-bit samples (PIL cannot write 16-bit RGB/RGBA)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def over_white8(c, a):
    return (c.astype(np.int64) * a + 255 * (255 - a.astype(np.int64)) + 127) // 255


def over_white16(c, a):
    den = 65535 * 65535
    num = (c.astype(np.int64) * a + 65535 * (65535 - a.astype(np.int64))) * 255
    return (num + den // 2) // den


def save_expected(name, rgb):
    Image.fromarray(np.asarray(rgb).astype(np.uint8), "RGB").save(os.path.join(OUT, name + ".expected.png"))


def main():
    os.makedirs(OUT, exist_ok=True)
    p = lambda n: os.path.join(OUT, n)

    # --- resize references
    sources = {"src": texture(37, 29, 1), "src2": texture(101, 67, 2)}
    sources["src"].save(p("resize_src.png"))
    sources["src2"].save(p("resize_src2.png"))
    targets = {
        "src": [(10, 7), (64, 50), (37, 12), (15, 29), (1, 1), (100, 3), (23, 41), (5, 80), (36, 28)],
        "src2": [(24, 16), (128, 96), (13, 67), (101, 9), (7, 5), (50, 100)],
    }
    for key, sizes in targets.items():
        for (w, h) in sizes:
            sources[key].resize((w, h), RESAMPLE).save(p(f"resize_{key}_{w}x{h}.png"))

    # --- EXIF orientation references
    src = Image.fromarray(np.arange(5 * 3 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5, "RGB")
    src.save(p("orient_src.png"))
    for n in range(1, 9):
        e = Image.Exif()
        e[0x0112] = n
        b = io.BytesIO()
        src.save(b, "PNG", exif=e)
        b.seek(0)
        ImageOps.exif_transpose(Image.open(b)).convert("RGB").save(p(f"orient_{n}.png"))

    quad = np.zeros((32, 48, 3), np.uint8)  # 48 wide, 32 high, stored sideways
    quad[:16, :24] = [220, 30, 30]
    quad[:16, 24:] = [30, 200, 30]
    quad[16:, :24] = [30, 30, 210]
    quad[16:, 24:] = [230, 230, 40]
    e = Image.Exif()
    e[0x0112] = 6
    Image.fromarray(quad, "RGB").save(p("exif6.jpg"), quality=95, exif=e)

    # --- formats and pixel layouts
    rgb = np.asarray(texture(12, 9, 3))
    grey = rgb[..., 0]
    alpha = ((np.arange(12 * 9).reshape(9, 12) * 37) % 256).astype(np.uint8)
    Image.fromarray(rgb).save(p("fmt_rgb.png")); save_expected("fmt_rgb.png", rgb)
    Image.fromarray(rgb).save(p("fmt_rgb.bmp")); save_expected("fmt_rgb.bmp", rgb)
    Image.fromarray(rgb).save(p("fmt_rgb.ppm")); save_expected("fmt_rgb.ppm", rgb)
    Image.fromarray(grey, "L").save(p("fmt_grey.pgm")); save_expected("fmt_grey.pgm", np.stack([grey] * 3, -1))
    Image.fromarray(grey, "L").save(p("fmt_grey.png")); save_expected("fmt_grey.png", np.stack([grey] * 3, -1))
    la = np.stack([grey, alpha], -1)
    Image.fromarray(la, "LA").save(p("fmt_la.png"))
    save_expected("fmt_la.png", np.stack([over_white8(grey, alpha)] * 3, -1))
    rgba = np.concatenate([rgb, alpha[..., None]], -1)
    Image.fromarray(rgba, "RGBA").save(p("fmt_rgba.png"))
    save_expected("fmt_rgba.png", over_white8(rgb, alpha[..., None]))
    # palette with a transparent entry
    pal = Image.fromarray(rgb).quantize(colors=8)
    pal.info["transparency"] = 0
    pal.save(p("fmt_pal_trns.png"), transparency=0)
    pal_rgb = np.asarray(pal.convert("RGB"))
    is_t = np.asarray(pal) == 0
    save_expected("fmt_pal_trns.png", np.where(is_t[..., None], 255, pal_rgb))
    # 16-bit layouts (the C++ side rounds v·255/65535 to nearest)
    rng = np.random.default_rng(4)
    g16 = rng.integers(0, 65536, size=(9, 12)).astype(np.uint16)
    Image.fromarray(g16.astype(np.uint16), "I;16").save(p("fmt_grey16.png"))
    save_expected("fmt_grey16.png", np.stack([(g16.astype(np.int64) * 255 + 32767) // 65535] * 3, -1))
    with open(p("fmt_grey16.pgm"), "wb") as f:  # 16-bit binary PGM (maxval 65535, big-endian samples)
        f.write(b"P5\n12 9\n65535\n" + g16.astype(">u2").tobytes())
    save_expected("fmt_grey16.pgm", np.stack([(g16.astype(np.int64) * 255 + 32767) // 65535] * 3, -1))
    c16 = rng.integers(0, 65536, size=(9, 12, 3)).astype(np.uint16)
    a16 = rng.integers(0, 65536, size=(9, 12, 1)).astype(np.uint16)
    png16(p("fmt_rgb16.png"), c16, 2)
    save_expected("fmt_rgb16.png", (c16.astype(np.int64) * 255 + 32767) // 65535)
    png16(p("fmt_rgba16.png"), np.concatenate([c16, a16], -1), 6)
    save_expected("fmt_rgba16.png", over_white16(c16, a16))
    png16(p("fmt_la16.png"), np.concatenate([c16[..., :1], a16], -1), 4)
    save_expected("fmt_la16.png", np.concatenate([over_white16(c16[..., :1], a16)] * 3, -1))
    # GIF: two frames, the first one must come back
    f1 = Image.fromarray(rgb).quantize(colors=16)
    f2 = Image.fromarray(255 - rgb).quantize(colors=16)
    f1.save(p("fmt_anim.gif"), save_all=True, append_images=[f2], duration=100, loop=0)
    save_expected("fmt_anim.gif", np.asarray(Image.open(p("fmt_anim.gif")).convert("RGB")))
    # JPEG: decoders differ in IDCT/upsampling, so the test compares with a tolerance
    Image.fromarray(rgb).resize((48, 36), Image.NEAREST).save(p("fmt_rgb.jpg"), quality=95)
    save_expected("fmt_rgb.jpg", np.asarray(Image.open(p("fmt_rgb.jpg")).convert("RGB")))

    # --- preprocessing pipelines on resize_src.png (37x29), tile 16
    im = sources["src"]
    # LLaVA-NeXT resize_and_pad_image into a 2x1 grid of 16 (32x16), pad value 127
    tw, th = 32, 16
    sw, sh = tw / im.width, th / im.height
    import math
    if sw < sh:
        nw, nh = tw, min(math.ceil(im.height * sw), th)
    else:
        nh, nw = th, min(math.ceil(im.width * sh), tw)
    canvas = Image.new("RGB", (tw, th), (127, 127, 127))
    canvas.paste(im.resize((nw, nh), RESAMPLE), ((tw - nw) // 2, (th - nh) // 2))
    canvas.save(p("pipeline_pad_2x1_t16.png"))
    # InternVL dynamic_preprocess: stretch to the grid, 3x2 grid of 16 -> 48x32
    im.resize((48, 32), RESAMPLE).save(p("pipeline_stretch_3x2_t16.png"))

    write_grid_reference(p("grid_reference.txt"))


# ---- grid selection, transcribed from the reference implementations
def select_best_resolution(original_size, possible_resolutions):
    """LLaVA-NeXT (llava/mm_utils.py)."""
    original_width, original_height = original_size
    best_fit = None
    max_effective_resolution = 0
    min_wasted_resolution = float("inf")
    for width, height in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        downscaled_width, downscaled_height = int(original_width * scale), int(original_height * scale)
        effective_resolution = min(downscaled_width * downscaled_height, original_width * original_height)
        wasted_resolution = (width * height) - effective_resolution
        if effective_resolution > max_effective_resolution or (
                effective_resolution == max_effective_resolution and wasted_resolution < min_wasted_resolution):
            max_effective_resolution = effective_resolution
            min_wasted_resolution = wasted_resolution
            best_fit = (width, height)
    return best_fit


def relaxed_aspect_ratio_matching(original_size, possible_resolutions, alpha):
    """BlueLM-V-3B Algorithm 1 (as given in DESIGN.md)."""
    w0, h0 = original_size
    best_fit, re_max, rw_min = None, 0, float("inf")
    for width, height in possible_resolutions:
        scale = min(width / w0, height / h0)
        re = min(int(w0 * scale) * int(h0 * scale), w0 * h0)
        rw = width * height - re
        if (re - re_max) > alpha * re_max or ((re_max - re) < alpha * re_max and rw < rw_min):
            re_max, rw_min, best_fit = re, rw, (width, height)
    return best_fit


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    """InternVL-1.5 (internvl_chat/internvl/train/dataset.py)."""
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def write_grid_reference(path, tile=384, max_num=16, alpha=0.1, n=400):
    ours = [(m, t // m) for t in range(1, max_num + 1) for m in range(1, t + 1) if t % m == 0]
    target_ratios = sorted(set((i, j) for k in range(1, max_num + 1) for i in range(1, k + 1)
                               for j in range(1, k + 1) if 1 <= i * j <= max_num), key=lambda x: x[0] * x[1])
    res = [(tile * m, tile * k) for m, k in ours]
    rng = np.random.default_rng(7)
    sizes = [(380, 393), (394, 390), (500, 102), (768, 1536), (1, 1), (20000, 50), (50, 20000), (384, 384)]
    sizes += [tuple(int(v) for v in rng.integers(1, 5000, size=2)) for _ in range(n)]
    sizes += [tuple(int(v) for v in rng.integers(100, 900, size=2)) for _ in range(n)]
    with open(path, "w") as f:
        f.write(f"# tile {tile} max_tiles {max_num} alpha {alpha}; columns: W H relaxed llava-next internvl (m n each)\n")
        for w, h in sizes:
            r = relaxed_aspect_ratio_matching((w, h), res, alpha)
            rm, rn = (r[0] // tile, r[1] // tile) if r else (0, 0)
            l = select_best_resolution((w, h), res)
            i = find_closest_aspect_ratio(w / h, target_ratios, w, h, tile)
            f.write(f"{w} {h} {rm} {rn} {l[0] // tile} {l[1] // tile} {i[0]} {i[1]}\n")


if __name__ == "__main__":
    main()
