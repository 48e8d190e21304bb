"""How real inputs differ from the generator's images and questions: the wording of the question, the
font, a dark theme, the picture drawn larger, the content inside a phone screenshot or a camera frame,
blur / rotation / JPEG, and "Describe this image.".

Two pools of every kind: TRAIN (what training draws from) and HELD_OUT (what only the out-of-distribution
set, ood.py, draws from). The held-out fonts and phrasings never reach training: `train_phrasings`
refuses any wording the held-out pool can produce (tested in test_variation.py), and the font lists are
disjoint. A sample's variations come from their own random stream, so the underlying content (the word,
the values, the shapes) is the same as the unvaried sample's."""
from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# ---------------------------------------------------------------------------------------------------
# fonts (fonts-liberation2, fonts-freefont-ttf, fonts-urw-base35; all cover Latin with diacritics and
# Cyrillic). The generator's own DejaVu fonts stay in every pool's complement: they are the base data.

_LIB = "/usr/share/fonts/truetype/liberation2/"
_FREE = "/usr/share/fonts/truetype/freefont/"
_URW = "/usr/share/fonts/opentype/urw-base35/"
TRAIN_FONTS = ([_LIB + f"Liberation{k}-{s}.ttf" for k in ("Sans", "Serif", "Mono") for s in ("Regular", "Bold", "Italic")]
               + [_FREE + f for f in ("FreeSans.ttf", "FreeSansBold.ttf", "FreeSansOblique.ttf", "FreeSerif.ttf",
                                      "FreeSerifBold.ttf", "FreeMono.ttf", "FreeMonoBold.ttf")]
               + [_URW + f for f in ("NimbusSans-Regular.otf", "NimbusSans-Bold.otf", "NimbusRoman-Regular.otf",
                                     "NimbusRoman-Bold.otf", "NimbusMonoPS-Regular.otf", "NimbusMonoPS-Bold.otf")])
HELD_OUT_FONTS = [_URW + f for f in ("C059-Roman.otf", "C059-Bold.otf", "P052-Roman.otf", "P052-Bold.otf",
                                     "URWBookman-Light.otf", "URWBookman-Demi.otf", "URWGothic-Book.otf",
                                     "URWGothic-Demi.otf", "NimbusSansNarrow-Regular.otf", "NimbusSansNarrow-Bold.otf")]

# ---------------------------------------------------------------------------------------------------
# phrasings. Each question kind is recognised from the generator's canonical wording (a regex whose named
# groups are the question's parameters) and has training templates and held-out templates. "{a|b}" picks
# one alternative; "{x}" is a parameter.

KINDS = [   # (kind, canonical regex); the first match wins, so the specific ones come first
    ("read", r"What word is written\?|Read the text\.|What does the image say\?|What is written\?"),
    ("letters", r"How many letters does the word have\?"),
    ("read_number", r"What number is shown\?|Read the number\.|What is the number\?"),
    ("read_code", r"What is the code\?"),
    ("first_char", r"What is the first character of the code\?"),
    ("script", r"Which script is this\?"),
    ("language", r"What language is this\?"),
    ("read_banner", r"What does the banner say\?|Read the banner\."),
    ("banner_number", r"What is the number on the banner\?"),
    ("banner_word", r"What is the word on the banner\?"),
    ("top_word", r"What is the top word\?"),
    ("bottom_word", r"What is the bottom word\?"),
    ("word_count", r"How many words are there\?"),
    ("total", r"What is the total\?"),
    ("item_count", r"How many items are there\?"),
    ("first_price", r"What is the price of the first item\?"),
    ("name", r"What is the name\?"),
    ("city", r"What is the city\?"),
    ("age", r"What is the age\?"),
    ("tallest", r"Which bar is the tallest\?"),
    ("shortest", r"Which bar is the shortest\?"),
    ("bar_value", r"What is the value of the (?P<c>\w+) bar\?"),
    ("bar_count", r"How many bars are there\?"),
    ("trend", r"Does the line go up or down\?"),
    ("point_count", r"How many points are there\?"),
    ("shape_count", r"How many shapes are there\?"),
    ("colour_count", r"How many (?P<c>\w+) shapes are there\?"),
    ("kind_count", r"How many (?P<s>circle|square|triangle)s are there\?"),
    ("leftmost_colour", r"What colour is the leftmost shape\?"),
    ("rightmost_shape", r"What shape is on the right\?"),
    ("top_bottom", r"Is the shape in the top or bottom half\?"),
    ("caption", r"Describe the image\.|What is in the image\?|Write a caption\."),
    ("plus", r"What is (?P<a>\d+) plus (?P<b>\d+)\?"),
    ("larger", r"Which is larger, (?P<a>\d+) or (?P<b>\d+)\?"),
    ("day_after", r"What day comes after (?P<d>\w+)\?"),
    ("opposite", r"What is the opposite of (?P<x>\w+)\?"),
    ("month_after", r"What month comes after (?P<m>\w+)\?"),
]
_KIND_RE = [(k, re.compile(r"(?:" + p + r")\Z")) for k, p in KINDS]

IMG = "{image|picture|photo}"
TRAIN_TEMPLATES = {
    "read": ["What {text|writing|word} is {shown|written|printed|displayed} {in|on} the " + IMG + "?",
             "{Read|Transcribe} the {word|text|writing} {in|on} the " + IMG + ".", "What does it say?",
             "What is written {here|on it}?", "{Please read|Tell me} what the " + IMG + " says.",
             "what word is written", "Which word can you see?", "Read this."],
    "letters": ["How many {letters|characters} {are in|does} the word{| have}?", "Count the letters in the word.",
                "How long is the word, in letters?", "Number of letters in the word?"],
    "read_number": ["What number is {written|printed|displayed} {here|in the " + IMG + "}?",
                    "Which number {do you see|can you see}?", "{Read|Tell me} the number {shown|written} {here|in the " + IMG + "}.",
                    "What is the {value|figure} {shown|written}?", "what number is this"],
    "read_code": ["{Read|Tell me|Give me} the code.", "Which code is {shown|written|printed}?",
                  "What code {is on the " + IMG + "|do you see}?", "what's the code"],
    "first_char": ["What is the code's first {character|symbol}?", "Which {character|symbol} does the code start with?",
                   "{Tell me|Give me} the first {character|symbol} of the code."],
    "script": ["{Which|What} {script|alphabet|writing system} is {this|used|the text in}?",
               "What script is the {word|text} written in?"],
    "language": ["{Which|What} language is {this word|the text|the word|written here}{| in}?",
                 "What language is the {word|text} in?"],
    "read_banner": ["What {text|words} {does the banner show|is on the banner|is on the sign}?",
                    "{Read|Transcribe} the {sign|banner|text on the banner}.", "What does the sign say?"],
    "banner_number": ["Which number is on the {banner|sign}?", "What number does the {banner|sign} show?"],
    "banner_word": ["Which word is on the {banner|sign}?", "What word does the {banner|sign} show?"],
    "top_word": ["{Which|What} word is {at the top|first|on top}?", "Read the {top|first} word."],
    "bottom_word": ["{Which|What} word is {at the bottom|last}?", "Read the {bottom|last} word."],
    "word_count": ["How many words {are shown|can you see|are in the " + IMG + "}?", "Count the words."],
    "total": ["What is the total {amount|price|on the receipt}?", "How much is the total?",
              "{What's|Tell me} the total{| amount}.", "What does the receipt total?"],
    "item_count": ["How many items {are on the receipt|are listed|did they buy}?", "Count the items on the receipt."],
    "first_price": ["{How much|What} {does|did} the first item cost?", "What is the first item's price?"],
    "name": ["What name is {on the form|written}?", "{Whose|Which} name is on the form?", "What's the name on the form?"],
    "city": ["{Which|What} city is {on the form|written}?", "What city is listed?"],
    "age": ["What age is {on the form|written}?", "How old is the person on the form?"],
    "tallest": ["{Which|What} colour is the {tallest|highest} bar?", "Which bar is {highest|the biggest}?",
                "What's the colour of the tallest bar?"],
    "shortest": ["{Which|What} colour is the {shortest|lowest} bar?", "Which bar is {lowest|the smallest}?"],
    "bar_value": ["What value does the {c} bar {show|have}?", "How {tall|high} is the {c} bar?",
                  "{Read|Tell me} the value of the {c} bar."],
    "bar_count": ["How many bars {does the chart have|are in the chart|are shown}?", "Count the bars."],
    "trend": ["Is the line going up or down?", "Does the {line|chart} {rise|go up} or {fall|go down}?",
              "{Which|What} direction does the line go, up or down?"],
    "point_count": ["How many {points|dots} {does the line have|are on the line|are shown}?", "Count the points."],
    "shape_count": ["How many {shapes|objects} {do you see|are in the " + IMG + "|are shown}?", "Count the shapes."],
    "colour_count": ["How many {c} {shapes|objects} {do you see|are in the " + IMG + "|are shown}?",
                     "Count the {c} shapes."],
    "kind_count": ["How many {s}s {do you see|are in the " + IMG + "|are shown}?", "Count the {s}s."],
    "leftmost_colour": ["What is the colour of the {leftmost|left-most|first} shape?",
                        "{Which|What} colour is the shape on the {far left|left}?"],
    "rightmost_shape": ["{Which|What} shape is {rightmost|at the right|on the far right}?",
                        "What is the {rightmost|right-most|last} shape?"],
    "top_bottom": ["Is the shape {at the top or at the bottom|in the upper or lower half}?",
                   "Is it in the top half or the bottom half?"],
    "caption": ["Describe {the|this} " + IMG + ".", "{Caption|Describe} this.", "What is {shown|in this " + IMG + "}?",
                "What do you see?", "Write a caption for the " + IMG + "."],
    "plus": ["What is {a} + {b}?", "{a} + {b} =", "{Add|Sum} {a} and {b}.", "{Compute|Work out} {a} plus {b}.",
             "What do you get if you add {a} and {b}?", "what is {a} plus {b}"],
    "larger": ["Which number is {larger|bigger|greater}: {a} or {b}?", "Which is {bigger|greater}, {a} or {b}?",
               "{Pick|Name} the larger number: {a} or {b}."],
    "day_after": ["Which day {comes|is} after {d}?", "What is the day after {d}?", "Name the day after {d}."],
    "opposite": ["What is the opposite of the word {x}?", "Give the opposite of {x}.", "{x}: what is its opposite?"],
    "month_after": ["Which month {comes|is} after {m}?", "What is the month after {m}?", "Name the month after {m}."],
}
HELD_OUT_TEMPLATES = {
    "read": ["What text is in the image?", "Can you read the word for me?", "What's written on this?"],
    "letters": ["How many letters are there in this word?", "What is the letter count of the word?"],
    "read_number": ["Read the digits.", "What's the number in the picture?", "Which digits are written?"],
    "read_code": ["What code is written there?", "Can you read the code?"],
    "first_char": ["What does the code begin with?", "What's the first symbol in the code?"],
    "script": ["In which script is it written?", "What kind of alphabet is that?"],
    "language": ["Which language is that?", "What language is it written in?"],
    "read_banner": ["What is written on the banner?", "Can you read the sign?"],
    "banner_number": ["What's the number on the sign?"],
    "banner_word": ["What's the word on the sign?"],
    "top_word": ["What's the word at the very top?"],
    "bottom_word": ["What's the word at the very bottom?"],
    "word_count": ["What is the number of words?", "How many words can be seen?"],
    "total": ["What's the receipt's total?", "How much does it come to in total?"],
    "item_count": ["What is the number of items on the receipt?"],
    "first_price": ["What's the price of the first thing?"],
    "name": ["Which name does the form give?"],
    "city": ["Which city does the form give?"],
    "age": ["What age does the form give?"],
    "tallest": ["What colour is the bar that is tallest?", "Which colour has the highest bar?"],
    "shortest": ["What colour is the bar that is shortest?", "Which colour has the lowest bar?"],
    "bar_value": ["What's the {c} bar's value?", "Which number is above the {c} bar?"],
    "bar_count": ["What is the number of bars?", "How many bars can be seen?"],
    "trend": ["Up or down: where does the line go?", "Is the trend up or down?"],
    "point_count": ["What is the number of points on the line?"],
    "shape_count": ["What is the number of shapes?", "How many shapes can be seen?"],
    "colour_count": ["What is the number of {c} shapes?"],
    "kind_count": ["What is the number of {s}s?"],
    "leftmost_colour": ["Which colour does the leftmost shape have?"],
    "rightmost_shape": ["What is the shape furthest to the right?"],
    "top_bottom": ["Is the shape higher up or lower down?"],
    "caption": ["What does this picture show?", "Give a short description of the image."],
    "plus": ["What's {a} + {b}?", "How much is {a} plus {b}?", "Calculate {a} + {b}."],
    "larger": ["Which one is more, {a} or {b}?", "Of {a} and {b}, which is larger?"],
    "day_after": ["What's the day following {d}?", "Which day follows {d}?"],
    "opposite": ["What's the opposite of {x}?", "What word means the opposite of {x}?"],
    "month_after": ["What's the month following {m}?", "Which month follows {m}?"],
}
# "Describe this image." (and its training variants) on any task's image: answered with a caption that
# names what the image shows (caption_of).
DESCRIBE_TRAIN = ["Describe this image.", "Describe the image.", "Describe this {picture|photo}.", "What is in this image?",
                  "What do you see in the " + IMG + "?", "Caption this " + IMG + "."]
DESCRIBE_HELD_OUT = ["What does this picture show?", "Give a short description of the image."]


def question_kind(q: str):
    """(kind, parameters) of a canonical generator question, or None."""
    for kind, rx in _KIND_RE:
        m = rx.match(q)
        if m:
            return kind, m.groupdict()
    return None


def _expand(template: str):
    """Every wording a template can produce ({a|b} alternatives, nested ones too; parameters left as {x})."""
    m = re.search(r"\{([^{}]*\|[^{}]*)\}", template)
    if m is None:
        return [template]
    return [w for alt in m.group(1).split("|") for w in _expand(template[:m.start()] + alt + template[m.end():])]


def normalise(q: str) -> str:
    return re.sub(r"[^a-z0-9{} ]", "", q.lower()).strip()


def _pool(templates: dict, held_out: dict | None):
    """kind → every wording (the held-out ones removed from a training pool)."""
    out = {}
    for kind, ts in templates.items():
        ws = [w for t in ts for w in _expand(t)]
        if held_out is not None:
            banned = {normalise(w) for t in held_out.get(kind, []) for w in _expand(t)}
            ws = [w for w in ws if normalise(w) not in banned]
        out[kind] = list(dict.fromkeys(ws))
    return out


TRAIN_PHRASINGS = _pool(TRAIN_TEMPLATES, HELD_OUT_TEMPLATES)
HELD_OUT_PHRASINGS = _pool(HELD_OUT_TEMPLATES, None)
DESCRIBE_TRAIN_PHRASINGS = [w for t in DESCRIBE_TRAIN for w in _expand(t)
                            if normalise(w) not in {normalise(h) for h in DESCRIBE_HELD_OUT}]


def rephrase(q: str, rng, pool: dict) -> str:
    """q in another wording from `pool`, its parameters kept; q itself where its kind is unknown."""
    found = question_kind(q)
    if found is None or not pool.get(found[0]):
        return q
    kind, params = found
    w = pool[kind][int(rng.integers(len(pool[kind])))]
    return w.format(**params) if params else w


# ---------------------------------------------------------------------------------------------------
# captions: what "Describe this image." answers, from the sample's description (data.py's `desc`)

CAPTION_TASKS = {"ocr_word", "ocr_number", "ocr_code", "multilingual", "banner", "strip", "document", "chart",
                 "shapes", "caption"}


def caption_of(task: str, desc: str) -> str:
    head, _, body = desc.partition(": ")

    def listing(items):
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    if task == "ocr_word":
        return f"the word {body}"
    if task == "ocr_number":
        return f"the number {body}"
    if task == "ocr_code":
        return f"the code {body}"
    if task == "multilingual":
        return f"the {head.split()[0]} word {body}"
    if task == "banner":
        return f"a banner that says {body}"
    if task == "strip":
        return "a strip with the words " + listing(body.split())
    if task == "document":
        fields = dict(f.split(" ", 1) for f in body.split("; "))
        if head == "receipt":
            return f"a receipt with a total of {fields['TOTAL']}"
        return f"a form for {fields['NAME']} from {fields['CITY']}, age {fields['AGE']}"
    if task == "chart":
        if head == "bar chart":
            return "a bar chart with " + listing(body.split(", "))
        return "a " + desc
    if task in ("shapes", "caption"):
        if " and " in body or body.startswith(("a ", "an ")):
            return body
        return listing([f"{'an' if p.startswith('orange') else 'a'} {p}" for p in body.split(", ")])
    raise ValueError(f"no caption for task {task!r}")


def caption_key_terms(task: str, desc: str) -> list:
    """What a caption must name to describe the image: the text it shows, the total, the colours."""
    head, _, body = desc.partition(": ")
    if task in ("ocr_word", "ocr_number", "ocr_code", "multilingual", "banner"):
        return [body]
    if task == "strip":
        return body.split()
    if task == "document":
        fields = dict(f.split(" ", 1) for f in body.split("; "))
        return [fields["TOTAL"]] if head == "receipt" else [fields["NAME"]]
    if task == "chart":
        return [p.split()[0] for p in body.split(", ")] if head == "bar chart" else [desc.split()[3]]
    if task in ("shapes", "caption"):
        return re.findall(r"(?:red|green|blue|yellow|orange|purple) (?:circle|square|triangle)", body)
    raise ValueError(f"no key terms for task {task!r}")


# ---------------------------------------------------------------------------------------------------
# image variations. Each returns the new image and the affine map (scale, dx, dy) of glyph boxes.

def dark_theme(img: Image.Image) -> Image.Image:
    """Greys inverted, colours kept: white paper becomes dark, black text light, red bars stay red."""
    a = np.asarray(img.convert("RGB")).astype(np.int16)
    grey = (a.max(2) - a.min(2)) < 48
    a[grey] = 255 - a[grey]
    return Image.fromarray(a.astype(np.uint8))


def enlarge(img, rng):
    s = float(rng.uniform(1.8, 3.5))
    return img.resize((round(img.width * s), round(img.height * s)), Image.BICUBIC), (s, 0.0, 0.0)


SCREEN_SIZES_TRAIN = [(1080, 2340), (1080, 1920), (720, 1600), (1170, 2532), (1080, 2400), (828, 1792)]
SCREEN_SIZES_HELD_OUT = [(1080, 2340)]


def screenshot(img, rng, sizes):
    """The content shown inside a phone screenshot: status bar, app bar, skeleton lines (no text, so the
    question about the content stays unambiguous), the content as a picture 55-95 % of the screen wide."""
    W, H = sizes[int(rng.integers(len(sizes)))]
    dark = rng.random() < 0.35
    bg = tuple(int(v) for v in (rng.integers(12, 40, 3) if dark else rng.integers(236, 256, 3)))
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    sb = int(H * 0.03)
    app = int(H * rng.uniform(0.05, 0.08))
    bar = tuple(int(v) for v in rng.integers(0, 256, 3))
    d.rectangle([0, 0, W, sb + app], fill=bar)
    ink = tuple(255 - v for v in bg)
    for k in range(3):   # status icons
        x = W - int(W * (0.06 + 0.05 * k))
        d.rectangle([x, sb // 3, x + W // 40, sb - sb // 3], fill=ink)
    d.ellipse([W // 25, sb + app // 4, W // 25 + app // 2, sb + app // 4 + app // 2], fill=ink)
    navh = int(H * 0.06)
    d.rectangle([0, H - navh, W, H], fill=tuple(int(v * 0.9) for v in bg))
    for k in range(4):
        cx = W * (k + 0.5) / 4
        d.ellipse([cx - navh / 5, H - navh / 2 - navh / 5, cx + navh / 5, H - navh / 2 + navh / 5], fill=ink)
    frac = float(rng.uniform(0.55, 0.95))
    s = W * frac / img.width
    body_top, body_bottom = sb + app + H // 40, H - navh - H // 40
    s = min(s, (body_bottom - body_top) * 0.6 / img.height)
    cw, ch = round(img.width * s), round(img.height * s)
    x = int(rng.integers(0, W - cw + 1)) if frac < 0.9 else (W - cw) // 2
    y = int(rng.integers(body_top, max(body_top + 1, body_bottom - ch)))
    grey = tuple(int(0.5 * a + 0.5 * b) for a, b in zip(bg, ink))
    for top in range(body_top, body_bottom - H // 30, H // 22):   # skeleton text lines around the content
        if top + H // 60 < y - H // 80 or top > y + ch + H // 80:
            d.rounded_rectangle([W // 20, top, W // 20 + int(W * rng.uniform(0.3, 0.85)), top + H // 60],
                                radius=H // 120, fill=grey)
    canvas.paste(img.resize((cw, ch), Image.BICUBIC), (x, y))
    return canvas, (s, float(x), float(y))


CAMERA_SIZES_TRAIN = [(1280, 960), (1024, 768), (1600, 1200), (960, 720), (1440, 1080)]
CAMERA_SIZES_HELD_OUT = [(1280, 960), (1600, 1200)]


def camera_frame(img, rng, sizes):
    """The content as a card photographed off-centre in a 4:3 frame: a textured surround, uneven light, a
    slight tilt; the card is 30-60 % of the frame wide."""
    W, H = sizes[int(rng.integers(len(sizes)))]
    base = rng.integers(40, 200, 3)
    h, w = H // 4, W // 4   # the surround is smooth: drawn at a quarter of the size, then scaled up
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.25 * (xx / w - 0.5) * rng.uniform(-1, 1) + 0.25 * (yy / h - 0.5) * rng.uniform(-1, 1)
    surround = base[None, None, :] * light[..., None] + rng.normal(0, 10, (h, w, 3))
    canvas = Image.fromarray(np.clip(surround, 0, 255).astype(np.uint8)).resize((W, H), Image.BICUBIC)
    margin = max(2, img.width // 12)
    card = Image.new("RGB", (img.width + 2 * margin, img.height + 2 * margin), (245, 245, 240))
    card.paste(img, (margin, margin))
    s = W * float(rng.uniform(0.3, 0.6)) / card.width
    s = min(s, H * 0.8 / card.height)
    cw, ch = round(card.width * s), round(card.height * s)
    x = int(rng.integers(W // 20, max(W // 20 + 1, W - cw - W // 20)))
    y = int(rng.integers(H // 20, max(H // 20 + 1, H - ch - H // 20)))
    canvas.paste(card.resize((cw, ch), Image.BICUBIC), (x, y))
    return canvas, (s, x + margin * s, y + margin * s)


def degrade(img, rng):
    """Mild blur, a small rotation (at most 3 degrees) and JPEG compression."""
    if rng.random() < 0.7:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.1))))
    if rng.random() < 0.6:
        a = np.asarray(img)
        fill = tuple(int(v) for v in np.median(a.reshape(-1, 3), 0))
        img = img.rotate(float(rng.uniform(-3, 3)), resample=Image.BICUBIC, fillcolor=fill)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(25, 70)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# ---------------------------------------------------------------------------------------------------
# which variations a sample gets

@dataclass(frozen=True)
class Recipe:
    paraphrase: float = 0.0    # per question: another wording
    font: float = 0.0          # the text drawn in another font
    dark: float = 0.0
    large: float = 0.0         # frames: at most one of large / screenshot / camera
    screenshot: float = 0.0
    camera: float = 0.0
    degrade: float = 0.0
    describe: float = 0.0      # add (training) or ask (evaluation) "Describe this image."
    held_out: bool = False     # the held-out pools (evaluation only)
    describe_only: bool = False   # the describe question replaces the sample's questions


# Training's mixture: half the questions reworded, a third of the text in other fonts, a third of the
# images framed (larger, a screenshot, a camera frame), and a describe turn on one image in five.
TRAIN = Recipe(paraphrase=0.5, font=0.35, dark=0.12, large=0.12, screenshot=0.12, camera=0.12, degrade=0.15,
               describe=0.2)

# The out-of-distribution set's conditions: one variation each, always applied, from the held-out pools.
CONDITIONS = {
    "paraphrase": Recipe(paraphrase=1.0, held_out=True),
    "font": Recipe(font=1.0, held_out=True),
    "dark": Recipe(dark=1.0, held_out=True),
    "large": Recipe(large=1.0, held_out=True),
    "screenshot": Recipe(screenshot=1.0, held_out=True),
    "camera": Recipe(camera=1.0, degrade=1.0, held_out=True),
    "degraded": Recipe(degrade=1.0, held_out=True),
    "describe": Recipe(describe=1.0, describe_only=True, held_out=True),
}


@dataclass
class Plan:
    """The variations drawn for one sample (before it is rendered: the font must be known then)."""
    recipe: Recipe
    font_pool: list | None = None
    dark: bool = False
    frame: str | None = None
    degrade: bool = False
    describe: bool = False
    rng: np.random.Generator = field(default=None, repr=False)


def plan(recipe: Recipe, rng) -> Plan:
    p = Plan(recipe=recipe, rng=rng)
    if rng.random() < recipe.font:
        p.font_pool = HELD_OUT_FONTS if recipe.held_out else TRAIN_FONTS
    p.dark = bool(rng.random() < recipe.dark)
    r = rng.random()
    for name in ("large", "screenshot", "camera"):
        pr = getattr(recipe, name)
        if r < pr:
            p.frame = name
            break
        r -= pr
    p.degrade = bool(rng.random() < recipe.degrade)
    p.describe = bool(rng.random() < recipe.describe)
    return p


def apply(sample: dict, p: Plan) -> dict:
    """The planned variations on a rendered sample (its image, glyph boxes and questions)."""
    rng, r = p.rng, p.recipe
    pool = HELD_OUT_PHRASINGS if r.held_out else TRAIN_PHRASINGS
    qa = [(rephrase(q, rng, pool) if rng.random() < r.paraphrase else q, a) for q, a in sample["qa"]]
    img, glyphs = sample["image"], sample["glyphs"]
    if img is not None:
        affine = (1.0, 0.0, 0.0)
        if p.dark:
            img = dark_theme(img)
        if p.frame == "large":
            img, affine = enlarge(img, rng)
        elif p.frame == "screenshot":
            img, affine = screenshot(img, rng, SCREEN_SIZES_HELD_OUT if r.held_out else SCREEN_SIZES_TRAIN)
        elif p.frame == "camera":
            img, affine = camera_frame(img, rng, CAMERA_SIZES_HELD_OUT if r.held_out else CAMERA_SIZES_TRAIN)
        if p.degrade:
            img = degrade(img, rng)
        s, dx, dy = affine
        glyphs = [(c, x0 * s + dx, y0 * s + dy, x1 * s + dx, y1 * s + dy) for c, x0, y0, x1, y1 in glyphs]
        if p.describe and sample["task"] in CAPTION_TASKS:
            phrasings = DESCRIBE_HELD_OUT if r.held_out else DESCRIBE_TRAIN_PHRASINGS
            turn = (phrasings[int(rng.integers(len(phrasings)))], caption_of(sample["task"], sample["desc"]))
            qa = [turn] if r.describe_only else qa + [turn]
    return {**sample, "image": img, "glyphs": glyphs, "qa": qa, "variation": p}
