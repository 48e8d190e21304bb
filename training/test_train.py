"""The trainer's stage-2 losses on a real (tiny) batch."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import train  # noqa: E402


def small_trainer(tmp_path, *extra):
    a = train.parse_args(["--out", str(tmp_path), "--corpus", "150", "--vocab", "300", "--v-width", "32",
                          "--v-layers", "1", "--v-heads", "2", "--width", "48", "--layers", "1", "--heads", "4",
                          "--kv-heads", "2", "--ff", "64", "--batch", "6", *extra])
    return train.Trainer(a)


def fit_stage2(tr, steps):
    """`steps` AdamW steps of stage 2 on one batch; returns (first loss, last loss)."""
    batch, _ = next(tr.batches("stage2", 0))
    opt = torch.optim.AdamW(tr.params_for("stage2"), lr=3e-3)
    first = None
    for _ in range(steps):
        loss = tr.loss("stage2", batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss.item()


def test_content_loss_pools_each_images_own_tiles(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path)
    batch, _ = next(tr.batches("stage2", 40_000))   # past the curriculum's start: every task
    with_img = [e for e in batch if e[2] is not None]
    assert len(with_img) >= 2 and any(e[2].shape[0] > 1 for e in with_img)   # several tiles for one image
    pixels = torch.cat([torch.from_numpy(e[2]) for e in with_img])
    vit_out = tr.model.vit(pixels)
    got = tr.content_loss(vit_out, batch)
    # reference: one image at a time
    want, k = 0.0, 0
    for e in with_img:
        n = e[2].shape[0]
        pooled = vit_out[k:k + n].mean(1).mean(0)
        k += n
        target = torch.zeros(tr.tok.n_vocab)
        target[e[3]] = 1
        want += torch.nn.functional.binary_cross_entropy_with_logits(tr.content(pooled), target, reduction="sum")
    assert torch.allclose(got, want / len(with_img), rtol=1e-5)
    # the targets are the description's tokens
    e = with_img[0]
    assert e[3] and tr.tok.decode(e[3]).strip()


def test_stage2_loss_trains(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path)
    first, last = fit_stage2(tr, 15)
    assert last < 0.7 * first


def test_read_phase_trains_the_vit_on_glyphs(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path)
    batch, _ = next(tr.batches("read", 0))
    assert all(s["image"] is not None and s["task"] in data.READING_WEIGHTS for s in batch)
    assert sum(len(s["glyphs"]) for s in batch) > 0
    ps = tr.params_for("read")
    assert {id(p) for p in ps} == {id(p) for p in list(tr.model.vit.parameters()) + list(tr.glyph.parameters())}
    opt = torch.optim.AdamW(ps, lr=3e-3)
    first = None
    for _ in range(15):
        loss = tr.loss("read", batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_stage2_glyph_labels_match_the_vit_tiles(tmp_path):
    tr = small_trainer(tmp_path)
    batch, _ = next(tr.batches("stage2", 40_000))
    for e in batch:
        if e[2] is None:
            assert e[4] is None
        else:
            g = tr.mc.tile // tr.mc.patch
            assert e[4].shape == (e[2].shape[0], g, g)
    tr.loss("stage2", batch)
    assert "glyph_loss" in tr.last_parts


def test_glyph_loss_weights_background_and_skips_the_thumbnail(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path)   # defaults: background weight 0.1, no thumbnail labels
    s = next(s for s in (data.make_sample("train", i, task="banner") for i in range(20)))
    grid, tiles = train.tiling.image_to_tiles(s["image"], tr.tcfg)
    assert len(tiles) == grid[0] * grid[1] + 1   # a banner gets a grid and a thumbnail
    labels = tr.glyph_labels(s, grid, len(tiles))
    assert (labels[-1] == -1).all() and (labels[:-1] >= 0).all() and (labels[:-1] > 0).any()
    vit_out = tr.model.vit(torch.from_numpy(train.tiling.normalize(tiles, tr.tcfg)))
    got = tr.glyph_loss(vit_out, torch.from_numpy(labels))
    # reference: per-patch cross-entropy, the thumbnail dropped, background patches at weight 0.1
    logits = tr.glyph(vit_out[:-1].reshape(-1, vit_out.shape[-1]))
    y = torch.from_numpy(labels[:-1]).reshape(-1)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    w = torch.where(y == 0, torch.tensor(0.1), torch.tensor(1.0))
    assert torch.allclose(got, (ce * w).sum() / w.sum(), rtol=1e-5)


def test_init_from_a_checkpoint_keeps_its_heads(tmp_path):
    torch.manual_seed(0)
    first = small_trainer(tmp_path / "a")
    with torch.no_grad():
        first.glyph.weight.add_(1.0)   # heads that a fresh initialisation would not reproduce
    first.save(str(tmp_path / "a" / "final.pt"), final=True)
    a = train.parse_args(["--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "final.pt"), "--corpus", "150",
                          "--vocab", "300", "--v-width", "32", "--v-layers", "1", "--v-heads", "2", "--width", "48",
                          "--layers", "1", "--heads", "4", "--kv-heads", "2", "--ff", "64", "--batch", "6"])
    second = train.Trainer(a)
    assert not second.fresh_heads
    assert torch.equal(second.glyph.weight, first.glyph.weight)
    assert torch.equal(second.content.weight, first.content.weight)


def test_fresh_heads_are_fitted_without_touching_the_model(tmp_path):
    torch.manual_seed(0)
    tr = small_trainer(tmp_path)
    tr.a.head_steps, tr.a.log_every = 12, 100
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    batch, _ = next(tr.batches("stage2", 40_000))
    tr.loss("stage2", batch)
    glyph_before = tr.last_parts["glyph_loss"]
    tr.fresh_heads = True
    tr.fit_fresh_heads(40_000)
    assert not tr.fresh_heads
    assert all(torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
    tr.loss("stage2", batch)
    assert tr.last_parts["glyph_loss"] < glyph_before


def test_task_boost_shifts_the_stage2_mixture(tmp_path):
    assert train.parse_task_boost(["ocr_word=3", "text=0"]) == {"ocr_word": 3.0, "text": 0.0}
    for bad in (["nosuchtask=2"], ["ocr_word"], ["ocr_word=x"], ["ocr_word=-1"]):
        try:
            train.parse_task_boost(bad)
        except SystemExit as e:
            assert "--task-boost" in str(e)
        else:
            raise AssertionError(f"{bad} accepted")
    a = train.parse_args(["--out", str(tmp_path), "--corpus", "150", "--vocab", "300", "--v-width", "32",
                          "--v-layers", "1", "--v-heads", "2", "--width", "48", "--layers", "1", "--heads", "4",
                          "--kv-heads", "2", "--ff", "64", "--batch", "6", "--no-curriculum",
                          "--task-boost", "text=0", "ocr_word=20"])
    tr = train.Trainer(a)
    it = tr.batches("stage2", 0)
    n_img, n_text = 0, 0
    for _ in range(8):
        batch, _ = next(it)
        n_img += sum(e[2] is not None for e in batch)
        n_text += sum(e[2] is None for e in batch)
    assert n_text == 0 and n_img == 48   # text weight 0: every sample has an image
