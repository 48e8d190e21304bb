"""Tokenizer checks: round trips, special tokens, and equality of the GPT-2 regex and llama.cpp's
`default` pre-tokeniser on the corpus (the reason merges stay inside letter chunks)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from tokenizer import SPECIALS, BPETokenizer, bytes_to_unicode  # noqa: E402

_tok = None


def tok():
    global _tok
    if _tok is None:
        _tok = BPETokenizer.train(data.corpus_texts(300), 600)
    return _tok


def test_bytes_to_unicode_is_gpt2():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256 and m[ord("A")] == "A" and m[32] == "Ġ" and m[10] == "Ċ"


def test_round_trip_multilingual():
    t = tok()
    for s in ["What is the total? 12.50", "мир дом", "中国 你好", "straße  grün\n\nx", "émoji 😀 ok"]:
        assert t.decode(t.encode(s)) == s


def test_specials_are_single_control_tokens_at_the_end():
    t = tok()
    ids = t.encode("<|im_start|>user\n<image></image><tile><row><|im_end|>")
    assert ids[0] == t.id("<|im_start|>") and ids[-1] == t.id("<|im_end|>")
    assert [t.tokens[i] for i in ids[-5:-1]] == ["<image>", "</image>", "<tile>", "<row>"]
    assert t.decode(ids[1:-5]) == "user\n"
    assert t.tokens[-len(SPECIALS):] == SPECIALS
    assert all(tt == 3 for tt in t.token_types()[-len(SPECIALS):]) and t.token_types()[0] == 1
    # with parse_special off, the marker text is ordinary bytes
    assert t.id("<image>") not in t.encode("<image>", parse_special=False)


def test_digits_and_punctuation_are_single_bytes():
    t = tok()
    ids = t.encode(" 2024.5!?")
    assert len(ids) == len(" 2024.5!?")


def test_llama_default_pretokenizer_gives_same_ids():
    t = tok()
    texts = data.corpus_texts(200, base=123_000_000) + ["a, b. 1234567 $5 <x> | ^~ 'll 're ok", "  spaced   out  "]
    for s in texts:
        assert t.encode(s) == t.encode(s, pretok="llama_default"), s


def test_unique_token_strings():
    t = tok()
    assert len(set(t.tokens)) == len(t.tokens)
