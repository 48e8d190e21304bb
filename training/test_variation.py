import os

import numpy as np

import data
import ood
import variation as v


def test_held_out_phrasings_never_reach_training():
    held = {v.normalise(w) for ws in v.HELD_OUT_PHRASINGS.values() for w in ws}
    held |= {v.normalise(w) for w in v.DESCRIBE_HELD_OUT}
    train = {v.normalise(w) for ws in v.TRAIN_PHRASINGS.values() for w in ws}
    train |= {v.normalise(w) for w in v.DESCRIBE_TRAIN_PHRASINGS}
    assert held and train and not held & train
    # the examples of how people ask are among the held-out wordings
    for q in ("What text is in the image?", "Read the digits.", "What's {a} + {b}?"):
        assert v.normalise(q) in held


def test_held_out_fonts_are_disjoint_from_training_and_installed():
    assert not set(v.HELD_OUT_FONTS) & set(v.TRAIN_FONTS)
    assert not set(v.HELD_OUT_FONTS) & set(data.LATIN_FONTS)
    for f in v.HELD_OUT_FONTS + v.TRAIN_FONTS:
        assert os.path.exists(f), f"{f} missing: scripts/install-deps.sh installs it"


def test_every_generated_question_has_a_kind_and_both_pools():
    seen = set()
    for t in data.TASK_NAMES:
        for i in range(40):
            for q, _ in data.make_sample("val", i, task=t)["qa"]:
                found = v.question_kind(q)
                assert found is not None, q
                seen.add(found[0])
    for kind in seen:
        assert v.TRAIN_PHRASINGS[kind] and v.HELD_OUT_PHRASINGS[kind], kind


def test_training_draws_no_held_out_wording():
    held = {v.normalise(w) for ws in v.HELD_OUT_PHRASINGS.values() for w in ws} | \
           {v.normalise(w) for w in v.DESCRIBE_HELD_OUT}
    for i in range(300):
        s = data.make_sample("train", 10_000 + i, recipe=v.TRAIN)
        for q, _ in s["qa"]:
            assert v.normalise(q) not in held, q


def test_a_variation_keeps_the_content_and_moves_the_glyph_boxes_with_it():
    for cond in ("plain", "font", "dark", "large", "screenshot", "camera"):
        a = data.make_sample("ood", 4, task="ocr_code", max_turns=1)
        b = data.make_sample("ood", 4, task="ocr_code", max_turns=1, recipe=ood.CONDITIONS[cond])
        assert a["desc"] == b["desc"] and a["qa"][0][1] == b["qa"][0][1]
        assert len(a["glyphs"]) == len(b["glyphs"]) > 0
        w, h = b["image"].size
        for _, x0, y0, x1, y1 in b["glyphs"]:
            assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
        if cond == "plain":
            assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
        else:
            assert a["image"].size != b["image"].size or not np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
    assert data.make_sample("ood", 4, task="ocr_code", recipe=ood.CONDITIONS["screenshot"])["image"].size == (1080, 2340)


def test_captions_name_what_the_image_shows():
    for t in sorted(v.CAPTION_TASKS):
        for i in range(10):
            s = data.make_sample("val", i, task=t)
            cap = v.caption_of(t, s["desc"])
            terms = v.caption_key_terms(t, s["desc"])
            assert terms and all(x.lower() in cap.lower() for x in terms), (t, s["desc"], cap)


def test_describe_scoring_needs_every_term():
    s = data.make_sample("ood", 1, task="chart", max_turns=1, recipe=ood.CONDITIONS["describe"])
    s["condition"] = "describe"
    gold = s["qa"][0][1]
    assert ood.correct(s, gold)
    assert not ood.correct(s, "a chart")


def test_ood_set_covers_every_condition_and_is_deterministic():
    a = ood.ood_set(1)
    b = ood.ood_set(1)
    assert {s["condition"] for s in a} == set(ood.CONDITIONS)
    assert [s["qa"] for s in a] == [s["qa"] for s in b]
    t = ood.table(a, [s["qa"][0][1] for s in a])
    assert all(row["all"][0] == row["all"][1] for row in t.values())
