"""The Python binding over the C API, on the shipped nano model and the tiny parity pair.
Run by `make test` (test-python) with EDGEVLM_LIBRARY pointing at the built libedgevlm.so, and once
more against the ASan/UBSan build of the library (LD_PRELOAD of the sanitizer runtime)."""
import os
import threading
import time
from pathlib import Path

import pytest

import edgevlm

ROOT = Path(__file__).resolve().parents[2]
NANO = ROOT / "models" / "edgevlm-nano.gguf"
NANO_MMPROJ = ROOT / "models" / "edgevlm-nano-mmproj.gguf"
TINY = ROOT / "tests" / "vision_parity" / "fixtures" / "tiny.gguf"
TINY_MMPROJ = ROOT / "tests" / "vision_parity" / "fixtures" / "tiny-mmproj.gguf"


@pytest.fixture(scope="module")
def nano():
    with edgevlm.Model(NANO, mmproj=NANO_MMPROJ, threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def tiny():
    with edgevlm.Model(TINY, mmproj=TINY_MMPROJ, threads=2, n_ctx=1024) as m:
        yield m


def test_version():
    assert edgevlm.version().count(".") == 2


def test_reads_the_banner_from_bytes_and_streams(nano):
    s = nano.session()
    s.attach_image((ROOT / "examples" / "banner.png").read_bytes())
    pieces = []
    answer = s.ask("What does the banner say?", temperature=0, max_tokens=16, on_text=pieces.append)
    assert answer == "CAFE 74"
    assert "".join(pieces) == answer
    assert s.stat("images") == 1
    assert s.stat("completion_tokens") >= 1
    s.close()


def test_image_from_file_and_from_pixels_give_the_same_answer(nano):
    from PIL import Image
    path = ROOT / "examples" / "receipt.png"
    a = nano.session()
    a.attach_image(path)
    want = a.ask("What is the total?", temperature=0, max_tokens=16)
    img = Image.open(path).convert("RGB")
    b = nano.session()
    b.attach_rgb(img.tobytes(), img.width, img.height)
    assert b.ask("What is the total?", temperature=0, max_tokens=16) == want


def test_multi_turn_and_reset(tiny):
    s = tiny.session(system="Be brief.")
    s.attach_image(TINY.parent / "square.png")
    s.ask("What is it?", temperature=0, max_tokens=4)
    first = s.stat("n_past")
    s.ask("And the colour?", temperature=0, max_tokens=4)
    assert s.stat("n_past") > first
    s.reset()
    s.ask("Hello", temperature=0, max_tokens=2)
    assert s.stat("n_past") < first + 10


def test_errors_are_exceptions(tiny, tmp_path):
    with pytest.raises(edgevlm.ModelError, match="nonexistent"):
        edgevlm.Model(tmp_path / "nonexistent.gguf")
    with pytest.raises(edgevlm.Error, match="kv_type|KV"):
        edgevlm.Model(TINY, kv_type="q3")
    s = tiny.session()
    with pytest.raises(edgevlm.ImageError, match="not a readable"):
        s.attach_image(b"definitely not an image")
    with pytest.raises(edgevlm.ImageError, match="no_such.png"):
        s.attach_image(tmp_path / "no_such.png")
    with pytest.raises(edgevlm.ImageError):
        s.attach_rgb(b"\0" * 5, 2, 2)
    with pytest.raises(edgevlm.Error, match="top_p"):
        s.ask("hi", top_p=3.0)
    s.close()
    with pytest.raises(edgevlm.Error) as e:
        s.ask("after close")
    assert e.value.status == edgevlm.INVALID_HANDLE


def test_callback_can_stop_and_its_exceptions_propagate(tiny):
    s = tiny.session()
    seen = []
    s.ask("Tell a long story.", temperature=0, max_tokens=200, on_text=lambda t: seen.append(t) or len(seen) < 3)
    assert s.stat("stop_reason") in (0, 4)  # end of generation, or the callback
    assert len(seen) <= 3

    def boom(_):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        s.ask("Again.", temperature=0, max_tokens=50, on_text=boom)


def test_cancel_from_another_thread(tiny):
    s = tiny.session()
    started = threading.Event()

    def on_text(_):
        started.set()
        time.sleep(0.002)

    def cancel_soon():
        started.wait(timeout=30)
        s.cancel()

    t = threading.Thread(target=cancel_soon)
    t.start()
    try:
        s.ask("Go on at length.", temperature=0, max_tokens=-1, on_text=on_text)
    except edgevlm.CancelledError:
        pass
    t.join()
    assert s.stat("n_past") < s.stat("n_ctx")


def test_session_outlives_model_handle():
    m = edgevlm.Model(TINY, mmproj=TINY_MMPROJ, threads=1, n_ctx=512)
    s = m.session()
    m.close()
    s.attach_image(TINY.parent / "tall.png")
    assert isinstance(s.ask("What is it?", temperature=0, max_tokens=3), str)
    s.close()


def test_concurrent_sessions(tiny):
    images = ["square.png", "wide.png", "tall.png"]

    def answer(name):
        s = tiny.session()
        s.attach_image(TINY.parent / name)
        a = s.ask("What is it?", temperature=0, max_tokens=6)
        s.close()
        return a

    alone = [answer(n) for n in images]
    together = [None] * len(images)

    def work(i):
        together[i] = answer(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
