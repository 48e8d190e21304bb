"""Synthetic multimodal data, deterministic from (split, index).

Every sample is drawn from numpy's Generator seeded with SeedSequence([SPLIT_ID[split], index]), so
train, val and test never share a generator seed (and so never share an image), and sample i of a
split is the same on every machine. Tasks mirror the paper's data types at a scale a ~3M-parameter
model can master on two CPU cores: OCR (words, numbers, codes), multilingual text (Latin, Cyrillic,
CJK), documents and receipts, bar and line charts, shapes/colours/counting/positions, captions, wide
banners and tall strips (which only dynamic resolution can read), and pure-text questions.

A sample is a dict: task, image (PIL RGB or None), qa (list of (question, answer)), desc (a text
rendering of the image content; the SigLIP caption and the text-only pretraining context)."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import variation

# "ood" is the out-of-distribution set's own seed space (ood.py)
SPLIT_ID = {"train": 1, "val": 2, "test": 3, "ood": 4}

DEJAVU = "/usr/share/fonts/truetype/dejavu/"
NOTO = "/usr/share/fonts/opentype/noto/"
# fonts-dejavu-core only (not -extra), so every machine with install-deps.sh renders the same pixels
LATIN_FONTS = [DEJAVU + f for f in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf",
                                    "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")]
CJK_FONTS = [NOTO + f for f in ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc", "NotoSerifCJK-Regular.ttc",
                                "NotoSerifCJK-Bold.ttc")]
CJK_INDEX = 2  # "SC" face of the collections

COLORS = {
    "red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220), "yellow": (240, 220, 20),
    "orange": (250, 140, 0), "purple": (140, 40, 180), "black": (10, 10, 10), "white": (250, 250, 250),
}
SHAPE_COLORS = ["red", "green", "blue", "yellow", "orange", "purple"]
SHAPES = ["circle", "square", "triangle"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

EN_WORDS = ("cat dog sun moon tree book milk fish bird rain snow wind fire door lamp road ship star cake "
            "rice salt tea coffee apple lemon bread water paper phone music train house river stone green "
            "light smile table chair glass money plant cloud heart field night sugar honey tiger zebra horse "
            "mouse piano radio clock spoon video pizza juice shirt shoes hotel beach park city open sale exit "
            "stop menu cash total price item free hello world north south east west").split()
FR_WORDS = "café été forêt élève garçon français fenêtre hôtel crème début".split()
DE_WORDS = "straße grün über schön mädchen brücke käse müde tür größe".split()
ES_WORDS = "niño año mañana señor café árbol canción jamón pingüino corazón".split()
RU_WORDS = ("мир дом кот вода хлеб молоко окно книга лес река город море небо друг чай сыр рыба "
            "стол нос сок луна снег лето зима").split()
ZH_WORDS = ("中国 你好 谢谢 北京 上海 学生 老师 朋友 时间 今天 明天 水果 苹果 米饭 电话 电脑 火车 飞机 "
            "大学 医生 天气 东西 银行 商店 咖啡 牛奶 音乐 电影 工作 家人").split()
LANGS = [("English", "Latin", EN_WORDS), ("French", "Latin", FR_WORDS), ("German", "Latin", DE_WORDS),
         ("Spanish", "Latin", ES_WORDS), ("Russian", "Cyrillic", RU_WORDS), ("Chinese", "Chinese", ZH_WORDS)]
CODE_CHARS = "ACDEFHJKLMNPRTUVWXY34679"   # no look-alikes (0/O, 1/I, 5/S, 8/B, 2/Z)
BANNER_WORDS = "SALE OPEN EXIT HOTEL PARK CAFE MENU BANK TAXI GATE BUS SHOP".split()
NAMES = "Anna Ben Clara David Emma Felix Grace Hugo Ivan Julia Karl Lena Maria Nina Omar Paul Rosa Sara Tom Vera".split()
CITIES = "Paris Rome Oslo Lima Cairo Tokyo Delhi Dubai Kyiv Quito Seoul Sofia Riga Bern Lagos".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("left", "right"), ("day", "night"),
             ("open", "closed"), ("fast", "slow"), ("old", "new"), ("black", "white"), ("yes", "no"),
             ("in", "out"), ("north", "south"), ("east", "west"), ("high", "low"), ("full", "empty")]

_font_cache = {}

# Where each drawn character lands, for the ViT's glyph loss (train.py): make_sample opens a record, and
# every text drawn through draw_text appends (char, x0, y0, x1, y1) in image pixels. Drawing is unchanged
# and no random numbers are drawn, so the images stay what earlier models were trained and tested on.
_glyph_record: list | None = None

# A sample drawn in other fonts (variation.py): every Latin font the generator picks is swapped for one of
# this pool, drawn from the variation's own random stream, so the sample's content stays the same.
_font_swap: tuple | None = None   # (pool, rng)


def swap_font(path):
    if _font_swap is None or path in CJK_FONTS:
        return path
    pool, rng = _font_swap
    return pick(rng, pool)


def draw_text(d, xy, text, fnt, fill):
    d.text(xy, text, font=fnt, fill=fill)
    if _glyph_record is None:
        return
    x, y = xy
    _, top, _, bottom = fnt.getbbox(text)
    for i, ch in enumerate(text):
        if not ch.isspace():
            _glyph_record.append((ch, x + fnt.getlength(text[:i]), y + top, x + fnt.getlength(text[:i + 1]), y + bottom))


def font(path, size):
    key = (path, size)
    f = _font_cache.get(key)
    if f is None:
        f = ImageFont.truetype(path, size, index=CJK_INDEX if path.endswith(".ttc") else 0)
        _font_cache[key] = f
    return f


def lum(c):
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def fg_bg(rng):
    """Contrasting text and background colours."""
    while True:
        bg = tuple(int(v) for v in rng.integers(0, 256, 3))
        fg = tuple(int(v) for v in rng.integers(0, 256, 3))
        if abs(lum(fg) - lum(bg)) > 110:
            return fg, bg


def background(rng, w, h, bg):
    kind = int(rng.integers(4))
    img = Image.new("RGB", (w, h), bg)
    if kind == 1:    # gradient
        bg2 = np.clip(np.array(bg) + rng.integers(-40, 41, 3), 0, 255)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        g = (np.array(bg)[None] * (1 - t[:, None]) + bg2[None] * t[:, None]).astype(np.uint8)
        arr = np.broadcast_to(g[None], (h, w, 3)) if len(t) == w else np.broadcast_to(g[:, None], (h, w, 3))
        img = Image.fromarray(np.ascontiguousarray(arr))
    elif kind == 2:  # noise
        arr = np.array(img, np.int16) + rng.normal(0, 18, (h, w, 3)).astype(np.int16)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    elif kind == 3:  # faint lines
        d = ImageDraw.Draw(img)
        c2 = tuple(int(np.clip(v + rng.integers(-35, 36), 0, 255)) for v in bg)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, max(w, h), 4))
            d.line([(x0 % w, y0 % h), (x1 % w, y1 % h)], fill=c2, width=1)
    return img


def draw_centered(img, text, fnt, fg, rng, jitter=True):
    d = ImageDraw.Draw(img)
    l, t, r, b = d.textbbox((0, 0), text, font=fnt)
    tw, th = r - l, b - t
    w, h = img.size
    fx = max(0, w - tw)
    fy = max(0, h - th)
    x = (fx // 2 + (int(rng.integers(-fx // 4, fx // 4 + 1)) if jitter and fx >= 4 else 0)) - l
    y = (fy // 2 + (int(rng.integers(-fy // 4, fy // 4 + 1)) if jitter and fy >= 4 else 0)) - t
    draw_text(d, (x, y), text, fnt, fg)
    return tw, th


def fit_font(paths, text, size, max_w, max_h):
    """The largest size ≤ size at which text fits max_w × max_h."""
    p = paths
    while size > 8:
        f = font(p, size)
        l, t, r, b = f.getbbox(text)
        if r - l <= max_w and b - t <= max_h:
            return f
        size -= 1
    return font(p, 8)


def text_image(rng, text, w, h, size, fontpaths):
    fg, bg = fg_bg(rng)
    img = background(rng, w, h, bg)
    f = fit_font(swap_font(pick(rng, fontpaths)), text, size, w - 4, h - 4)
    draw_centered(img, text, f, fg, rng)
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(0.5))
    return img


# ---------------------------------------------------------------------------------------------------
# tasks: each returns (image, [(question, answer), ...], desc)

def t_ocr_word(rng):
    word = pick(rng, EN_WORDS)
    r = rng.random()
    word = word.upper() if r < 0.3 else (word.capitalize() if r < 0.6 else word)
    w, h = int(rng.integers(60, 130)), int(rng.integers(36, 70))
    img = text_image(rng, word, w, h, int(rng.integers(14, 22)), LATIN_FONTS)
    qs = ["What word is written?", "Read the text.", "What does the image say?"]
    return img, [(pick(rng, qs), word), ("How many letters does the word have?", str(len(word)))], f"text: {word}"


def t_ocr_number(rng):
    k = int(rng.integers(1, 5))
    num = str(int(rng.integers(10 ** (k - 1) if k > 1 else 0, 10 ** k)))
    if rng.random() < 0.25:
        num = f"{num}.{int(rng.integers(0, 100)):02d}"
    w, h = int(rng.integers(56, 120)), int(rng.integers(36, 70))
    img = text_image(rng, num, w, h, int(rng.integers(14, 22)), LATIN_FONTS)
    qs = ["What number is shown?", "Read the number.", "What is the number?"]
    return img, [(pick(rng, qs), num)], f"number: {num}"


def t_ocr_code(rng):
    code = "".join(pick(rng, CODE_CHARS) for _ in range(int(rng.integers(3, 5))))
    w, h = int(rng.integers(64, 120)), int(rng.integers(36, 64))
    img = text_image(rng, code, w, h, int(rng.integers(15, 22)), LATIN_FONTS)
    return img, [("What is the code?", code), ("What is the first character of the code?", code[0])], f"code: {code}"


def t_multilingual(rng):
    lang, script, words = pick(rng, LANGS[1:] + LANGS[4:])   # weight Cyrillic and CJK up
    word = pick(rng, words)
    w, h = int(rng.integers(60, 120)), int(rng.integers(36, 64))
    paths = CJK_FONTS if script == "Chinese" else LATIN_FONTS
    img = text_image(rng, word, w, h, int(rng.integers(15, 22)), paths)
    qa = [(pick(rng, ["What is written?", "Read the text.", "What does the image say?"]), word),
          ("Which script is this?", script), ("What language is this?", lang)]
    return img, qa, f"{lang} text: {word}"


def t_banner(rng):
    """A wide banner: a 1×1 tile shrinks its text below legibility, a 3×1/4×1 grid keeps it."""
    word = pick(rng, BANNER_WORDS)
    num = str(int(rng.integers(1, 100)))
    text = f"{word} {num}"
    w, h = int(rng.integers(200, 290)), int(rng.integers(52, 72))
    img = text_image(rng, text, w, h, int(rng.integers(20, 30)), LATIN_FONTS)
    qa = [(pick(rng, ["What does the banner say?", "Read the banner."]), text),
          ("What is the number on the banner?", num), ("What is the word on the banner?", word)]
    return img, qa, f"banner: {text}"


def t_strip(rng):
    """A tall strip of stacked words: needs a 1×3/1×4 grid."""
    n = int(rng.integers(3, 5))
    words = [pick(rng, EN_WORDS[:60]) for _ in range(n)]
    w, h = int(rng.integers(52, 72)), int(rng.integers(200, 280))
    fg, bg = fg_bg(rng)
    img = background(rng, w, h, bg)
    d = ImageDraw.Draw(img)
    fp = swap_font(pick(rng, LATIN_FONTS))
    row_h = h // n
    for i, wd in enumerate(words):
        f = fit_font(fp, wd, int(rng.integers(16, 22)), w - 4, row_h - 6)
        l, t, r, b = d.textbbox((0, 0), wd, font=f)
        draw_text(d, ((w - (r - l)) // 2 - l, i * row_h + (row_h - (b - t)) // 2 - t), wd, f, fg)
    qa = [("What is the top word?", words[0]), ("What is the bottom word?", words[-1]),
          ("How many words are there?", str(n))]
    return img, qa, "strip: " + " ".join(words)


def t_document(rng):
    kind = int(rng.integers(2))
    fg = (int(rng.integers(0, 60)),) * 3
    bg = tuple(int(v) for v in rng.integers(215, 256, 3))
    w, h = int(rng.integers(110, 140)), int(rng.integers(110, 150))
    img = background(rng, w, h, bg)
    d = ImageDraw.Draw(img)
    fp = swap_font(pick(rng, LATIN_FONTS))
    if kind == 0:   # receipt
        prices = [int(rng.integers(1, 10)) * 100 + int(rng.integers(0, 4)) * 25 for _ in range(int(rng.integers(1, 3)))]
        total = sum(prices)
        fmt = lambda c: f"{c // 100}.{c % 100:02d}"
        lines = [f"ITEM {fmt(p)}" for p in prices] + [f"TOTAL {fmt(total)}"]
        qa = [("What is the total?", fmt(total)), ("How many items are there?", str(len(prices))),
              ("What is the price of the first item?", fmt(prices[0]))]
    else:           # form
        name, city, age = pick(rng, NAMES), pick(rng, CITIES), str(int(rng.integers(18, 90)))
        lines = [f"NAME {name}", f"CITY {city}", f"AGE {age}"]
        qa = [("What is the name?", name), ("What is the city?", city), ("What is the age?", age)]
    row_h = (h - 8) // len(lines)
    size = min(int(rng.integers(14, 18)), row_h - 3)
    for i, ln in enumerate(lines):
        f = fit_font(fp, ln, size, w - 8, row_h - 2)
        draw_text(d, (4, 4 + i * row_h), ln, f, fg)
    return img, qa, ("receipt: " if kind == 0 else "form: ") + "; ".join(lines)


def t_chart(rng):
    w, h = int(rng.integers(96, 128)), int(rng.integers(56, 65))
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    if rng.random() < 0.7:   # bar chart, value printed above each bar
        n = int(rng.integers(2, 5))
        cols = list(rng.permutation(SHAPE_COLORS)[:n])
        vals = list(rng.choice(np.arange(1, 10), n, replace=False))
        bw = (w - 8) // n
        top = 15
        fnt = font(swap_font(DEJAVU + "DejaVuSans-Bold.ttf"), 12)
        for i, (c, v) in enumerate(zip(cols, vals)):
            x0 = 4 + i * bw + 2
            bh = int((h - top - 4) * v / 9)
            d.rectangle([x0, h - 4 - bh, x0 + bw - 5, h - 4], fill=COLORS[c])
            draw_text(d, (x0 + (bw - 5) // 2 - 3, h - 4 - bh - 14), str(v), fnt, (0, 0, 0))
        i = int(rng.integers(n))
        qa = [("Which bar is the tallest?", cols[int(np.argmax(vals))]),
              ("Which bar is the shortest?", cols[int(np.argmin(vals))]),
              (f"What is the value of the {cols[i]} bar?", str(vals[i])),
              ("How many bars are there?", str(n))]
        desc = "bar chart: " + ", ".join(f"{c} {v}" for c, v in zip(cols, vals))
    else:                    # line chart
        n = int(rng.integers(3, 6))
        vals = list(rng.integers(1, 10, n))
        if vals[-1] == vals[0]:
            vals[-1] = vals[-1] % 9 + 1
        pts = [(4 + i * (w - 8) // (n - 1), h - 4 - int((h - 10) * v / 9)) for i, v in enumerate(vals)]
        col = COLORS[pick(rng, ["red", "blue", "green", "purple"])]
        d.line([(2, h - 3), (w - 2, h - 3)], fill=(120, 120, 120))
        d.line(pts, fill=col, width=2)
        for p in pts:
            d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=col)
        trend = "up" if vals[-1] > vals[0] else "down"
        qa = [("Does the line go up or down?", trend), ("How many points are there?", str(n))]
        desc = f"line chart going {trend} with {n} points"
    return img, qa, desc


def _shape_scene(rng, n_min, n_max):
    # at most the tile size: one tile (16 image tokens) is enough to count and name shapes
    w, h = int(rng.integers(56, 65)), int(rng.integers(48, 65))
    bg = (255, 255, 255) if rng.random() < 0.6 else tuple(int(v) for v in rng.integers(200, 256, 3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    n = int(rng.integers(n_min, n_max + 1))
    objs = []
    cell = max(1, w // n)
    for i in range(n):   # one object per vertical band: no overlaps, left-to-right order is known
        s = int(rng.integers(10, min(20, cell - 1, h - 4) + 1)) if min(cell - 1, h - 4) >= 10 else min(cell - 1, h - 4)
        x0 = i * cell + int(rng.integers(0, max(1, cell - s)))
        y0 = int(rng.integers(0, max(1, h - s)))
        shape, col = pick(rng, SHAPES), pick(rng, SHAPE_COLORS)
        box = [x0, y0, x0 + s, y0 + s]
        if shape == "circle":
            d.ellipse(box, fill=COLORS[col])
        elif shape == "square":
            d.rectangle(box, fill=COLORS[col])
        else:
            d.polygon([(x0 + s / 2, y0), (x0, y0 + s), (x0 + s, y0 + s)], fill=COLORS[col])
        objs.append((shape, col, x0 + s / 2, y0 + s / 2))
    return img, objs, w, h


def t_shapes(rng):
    img, objs, w, h = _shape_scene(rng, 1, 4)
    n = len(objs)
    qa = [("How many shapes are there?", str(n))]
    shape = pick(rng, SHAPES)
    qa.append((f"How many {shape}s are there?", str(sum(o[0] == shape for o in objs))))
    col = pick(rng, SHAPE_COLORS)
    qa.append((f"How many {col} shapes are there?", str(sum(o[1] == col for o in objs))))
    qa.append(("What colour is the leftmost shape?", objs[0][1]))
    qa.append(("What shape is on the right?", objs[-1][0]))
    if n == 1:
        o = objs[0]
        qa.append(("Is the shape in the top or bottom half?", "top" if o[3] < h / 2 else "bottom"))
    rng.integers(n)   # an unused draw, kept so that every sample stays what the shipped model was tested on
    rng.shuffle(qa)
    return img, qa[:3], "shapes: " + ", ".join(f"{c} {s}" for s, c, _, _ in objs)


def t_caption(rng):
    img, objs, w, h = _shape_scene(rng, 1, 2)
    cap = " and ".join(f"{'an' if c == 'orange' else 'a'} {c} {s}" for s, c, _, _ in objs)
    q = pick(rng, ["Describe the image.", "What is in the image?", "Write a caption."])
    return img, [(q, cap)], "shapes: " + cap


def t_text(rng):
    """Pure-text questions (no image)."""
    k = int(rng.integers(5))
    if k == 0:
        a, b = int(rng.integers(0, 50)), int(rng.integers(0, 50))
        return None, [(f"What is {a} plus {b}?", str(a + b))], ""
    if k == 1:
        a, b = (int(v) for v in rng.choice(100, 2, replace=False))
        return None, [(f"Which is larger, {a} or {b}?", str(max(a, b)))], ""
    if k == 2:
        i = int(rng.integers(7))
        return None, [(f"What day comes after {DAYS[i]}?", DAYS[(i + 1) % 7])], ""
    if k == 3:
        x, y = OPPOSITES[int(rng.integers(len(OPPOSITES)))]
        if rng.random() < 0.5:
            x, y = y, x
        return None, [(f"What is the opposite of {x}?", y)], ""
    i = int(rng.integers(12))
    return None, [(f"What month comes after {MONTHS[i]}?", MONTHS[(i + 1) % 12])], ""


TASKS = {
    "ocr_word": (t_ocr_word, 1.0), "ocr_number": (t_ocr_number, 1.0), "ocr_code": (t_ocr_code, 1.3),
    "multilingual": (t_multilingual, 1.3), "banner": (t_banner, 1.0), "strip": (t_strip, 1.0),
    "document": (t_document, 1.3), "chart": (t_chart, 1.0), "shapes": (t_shapes, 1.0),
    "caption": (t_caption, 0.6), "text": (t_text, 0.5),
}
TASK_NAMES = list(TASKS)


# Training-only task: "list the contents" of another task's image, answered with its full description
# (the words, values and shapes it shows). Every answer token depends on the image, so the decoder learns
# to look before it can settle on answering from the question (docs/TRAINING.md); the paper's stage 1
# uses image-caption pairs for the same reason. Not in TASKS: never evaluated.
DESCRIBE = "describe"
DESCRIBE_QUESTION = "List the contents of the image."
IMAGE_TASKS = [t for t in TASK_NAMES if t != "text"]


# The read phase's mixture: the tasks whose images show characters.
READING_WEIGHTS = {t: w for t, (_, w) in TASKS.items() if t not in ("shapes", "caption", "text")}


def curriculum_weights(progress: float) -> dict:
    """Stage-2 task weights at `progress` (0..1 of the phase's samples). Colour-and-shape tasks alone
    first (a decoder learns to look at them within ~100 steps, docs/TRAINING.md), then the other tasks
    ramped in up to 30 %, the easy ones kept at twice their weight until then."""
    easy = {"caption", "shapes"}
    start, full = 0.04, 0.3
    ramp = min(1.0, max(0.0, (progress - start) / (full - start)))
    w = {t: TASKS[t][1] * ((2.0 - ramp) if t in easy else ramp) for t in TASK_NAMES}
    w[DESCRIBE] = 1.0 * ramp
    return w


def _glyph_classes():
    chars = {chr(c) for c in range(33, 127)}
    for words in (EN_WORDS, FR_WORDS, DE_WORDS, ES_WORDS, RU_WORDS, ZH_WORDS, NAMES, CITIES, BANNER_WORDS):
        for w in words:
            chars.update(w + w.upper() + w.capitalize())
    return sorted(chars)


GLYPHS = _glyph_classes()                       # glyph class k + 1 is GLYPHS[k]; 0 is "no glyph"
GLYPH_CLASS = {ch: k + 1 for k, ch in enumerate(GLYPHS)}


def make_sample(split: str, index: int, task: str | None = None, max_turns: int | None = None,
                weights: dict | None = None, recipe: variation.Recipe | None = None):
    """Sample `index` of `split`. With task=None the task is drawn from the mixture (training; `weights`
    overrides TASKS' weights and may include DESCRIBE); training uses every question about the image as
    turns of one conversation (more supervision per ViT pass), evaluation passes the task and max_turns=1.
    `recipe` varies the sample (variation.py) from a random stream of its own: the same content, in other
    words, fonts and framings."""
    global _glyph_record, _font_swap
    p = None
    if recipe is not None:
        p = variation.plan(recipe, np.random.default_rng(np.random.SeedSequence(
            [SPLIT_ID[split], index, VARIATION_STREAM] + ([(TASK_NAMES + [DESCRIBE]).index(task) + 1] if task else []))))
        _font_swap = (p.font_pool, p.rng) if p.font_pool else None
    _glyph_record = []
    try:
        s = _make_sample(split, index, task, max_turns, weights)
    finally:
        glyphs, _glyph_record, _font_swap = _glyph_record, None, None
    s["glyphs"] = [(GLYPH_CLASS[g[0]],) + g[1:] for g in glyphs if g[0] in GLYPH_CLASS]
    return variation.apply(s, p) if p is not None else s


VARIATION_STREAM = 7919   # the third seed word of a sample's variation stream


def _make_sample(split, index, task, max_turns, weights):
    rng = np.random.default_rng(np.random.SeedSequence([SPLIT_ID[split], index] + ([(TASK_NAMES + [DESCRIBE]).index(task) + 1] if task else [])))
    if task is None:
        names = list(weights) if weights else TASK_NAMES
        w = np.array([weights[t] for t in names] if weights else [TASKS[t][1] for t in names])
        task = names[int(rng.choice(len(w), p=w / w.sum()))]
    if task == DESCRIBE:
        img, _, desc = TASKS[pick(rng, IMAGE_TASKS)][0](rng)
        return {"task": task, "image": img, "qa": [(DESCRIBE_QUESTION, desc)], "desc": desc, "split": split,
                "index": index}
    img, qa, desc = TASKS[task][0](rng)
    qa = [qa[int(i)] for i in rng.permutation(len(qa))]
    n = len(qa) if max_turns is None else min(max_turns, len(qa))
    return {"task": task, "image": img, "qa": qa[:n], "desc": desc, "split": split, "index": index}


def eval_set(split: str, per_task: int):
    """A fixed per-task evaluation set: one question per image."""
    return [make_sample(split, i, task=t, max_turns=1) for t in TASK_NAMES for i in range(per_task)]


def corpus_texts(n: int = 4000, base: int = 900_000_000):
    """Text for training the tokenizer: questions, answers and descriptions of training samples."""
    out = []
    for i in range(n):
        s = make_sample("train", base + i)
        out.append(s["desc"])
        for q, a in s["qa"]:
            out += [q, a]
    # make sure every lexicon word can be learned even if rare in the draw
    for words in [EN_WORDS, FR_WORDS, DE_WORDS, ES_WORDS, RU_WORDS, ZH_WORDS, NAMES, CITIES, DAYS, MONTHS]:
        out += [" ".join(words)] * 3
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="write sample images with their questions")
    ap.add_argument("--out", default="training/runs/samples")
    ap.add_argument("--n", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for t in TASK_NAMES:
        for i in range(a.n):
            s = make_sample("val", i, task=t)
            if s["image"] is not None:
                s["image"].save(f"{a.out}/{t}_{i}.png")
            print(t, i, s["image"].size if s["image"] else None, s["qa"], "|", s["desc"])
