#!/usr/bin/python3
"""Writes tests/fixtures/images/lanczos_<src>_<w>x<h>.png: PIL (Pillow 9.4) Image.resize((w, h),
Image.LANCZOS) of resize_src.png / resize_src2.png (written by make_resize_reference.py): the
reference of src/vision/resize.h's Lanczos filter (transformers' Idefics3 / SmolVLM processor
resamples with it). Run:  /usr/bin/python3 scripts/make_lanczos_reference.py  (from the repository root)
"""
import os

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "images")
CASES = [("src", 37, 12), ("src", 64, 50), ("src", 10, 7), ("src", 150, 120), ("src2", 13, 67), ("src2", 128, 96)]

for src, w, h in CASES:
    im = Image.open(os.path.join(OUT, f"resize_{src}.png")).convert("RGB")
    im.resize((w, h), Image.LANCZOS).save(os.path.join(OUT, f"lanczos_{src}_{w}x{h}.png"))
