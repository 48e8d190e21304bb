"""The data generator: determinism, split separation and the stage-2 curriculum."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402


def pixels(s):
    return None if s["image"] is None else np.asarray(s["image"]).tobytes()


def test_same_index_same_sample_and_splits_differ():
    for task in ("ocr_word", "chart", "shapes"):
        a, b = data.make_sample("train", 7, task=task), data.make_sample("train", 7, task=task)
        assert a["qa"] == b["qa"] and pixels(a) == pixels(b)
        t = data.make_sample("test", 7, task=task)
        assert pixels(t) != pixels(a)


def test_describe_answers_with_the_image_description():
    for i in range(20):
        s = data.make_sample("train", i, task=data.DESCRIBE)
        assert s["image"] is not None
        assert s["qa"] == [(data.DESCRIBE_QUESTION, s["desc"])] and s["desc"]
    # the question is not one any evaluated task asks (its answer would contradict theirs)
    asked = {q for t in data.TASK_NAMES for i in range(30) for q, _ in data.make_sample("val", i, task=t)["qa"]}
    assert data.DESCRIBE_QUESTION not in asked


def test_curriculum_starts_visual_and_ends_at_the_mixture():
    w0, w1 = data.curriculum_weights(0.0), data.curriculum_weights(1.0)
    assert {t for t, v in w0.items() if v > 0} == {"caption", "shapes"}
    w = data.curriculum_weights(0.15)
    assert 0 < w["ocr_word"] < data.TASKS["ocr_word"][1] and w["caption"] > data.TASKS["caption"][1]
    for t in data.TASK_NAMES:
        assert abs(w1[t] - data.TASKS[t][1]) < 1e-9
    drawn = {data.make_sample("train", i, weights=w0)["task"] for i in range(100)}
    assert drawn == {"caption", "shapes"}
    drawn = {data.make_sample("train", i, weights=w1)["task"] for i in range(300)}
    assert data.DESCRIBE in drawn and len(drawn) == len(data.TASK_NAMES) + 1


def test_evaluation_sets_never_contain_the_training_only_task():
    assert all(s["task"] != data.DESCRIBE for s in data.eval_set("test", 2))


def test_glyph_labels_spell_the_text_left_to_right():
    """The glyph loss's per-patch labels sit where the characters are drawn: read column by column across
    the grid's tiles, they spell the code in order (a mirrored, transposed or mis-tiled grid would not)."""
    import tiling
    tc = tiling.TilingConfig()
    for i in range(30):
        s = data.make_sample("val", i, task="ocr_code")
        code = s["desc"].split(": ", 1)[1]
        (m, n), tiles = tiling.image_to_tiles(s["image"], tc)
        labels = tiling.glyph_labels(s["glyphs"], s["image"].size, (m, n), tc, 8, len(tiles))
        assert labels.shape == (len(tiles), 8, 8)
        canvas = np.concatenate([np.concatenate(list(labels[r * m:(r + 1) * m]), axis=1) for r in range(n)])
        spelled = []
        for col in canvas.T:
            classes = set(col[col > 0].tolist())
            assert len(classes) <= 1                       # one line of text: one character per column
            if classes and (not spelled or spelled[-1] != min(classes)):
                spelled.append(min(classes))
        want = [data.GLYPH_CLASS[c] for k, c in enumerate(code) if k == 0 or code[k - 1] != c]
        assert spelled == want, (i, code)


def test_every_drawn_character_has_a_glyph_class():
    for t in data.TASK_NAMES:
        for i in range(20):
            s = data.make_sample("train", i, task=t)
            for g in s["glyphs"]:
                assert 1 <= g[0] <= len(data.GLYPHS) and g[1] < g[3] and g[2] < g[4]
    s = data.make_sample("val", 0, task="multilingual")
    word = s["desc"].split(": ", 1)[1]
    assert [data.GLYPHS[g[0] - 1] for g in s["glyphs"]] == [c for c in word if not c.isspace()]
    assert data.make_sample("val", 0, task="shapes")["glyphs"] == []


def test_examples_match_the_test_split(tmp_path):
    """examples/ (what `make demo` asks) must be the generator's current test images: a change to data.py
    that redraws them leaves the demo asking questions about images the model's test split no longer has."""
    import make_examples
    make_examples.main(str(tmp_path))
    shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "README.md")
    assert open(tmp_path / "README.md").read() == open(shipped).read(), \
        "examples/ is stale: run python3 training/make_examples.py"
