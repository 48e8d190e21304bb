"""Byte-level BPE (GPT-2 conventions) trained on the synthetic corpus, with ChatML and image-marker
special tokens. Encodes exactly as the engine's `tokenizer.ggml.model = gpt2` tokenizer: special tokens
split first, then the GPT-2 pre-tokenisation regex, then rank-ordered merges per chunk.

Merges are learned only inside ` ?\\p{L}+` chunks, so digits, punctuation and whitespace stay single
bytes; that makes llama.cpp's `default` pre-tokeniser (extra punctuation and 3-digit splits) produce
the same ids as the GPT-2 regex (checked in test_tokenizer.py)."""
from __future__ import annotations

import json
from collections import Counter

import regex

GPT2_PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# llama.cpp LLAMA_VOCAB_PRE_TYPE_DEFAULT: these four applied in sequence, each splitting the pieces
# left by the previous one (a match and the text between matches both become pieces).
LLAMA_DEFAULT_PATS = [regex.compile(p) for p in (
    r"[\p{P}\$\+<=>\^~\|]+",
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
)]
LETTER_CHUNK = regex.compile(r" ?\p{L}+")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "</image>", "<tile>", "<row>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def _split_llama_default(text: str):
    pieces = [text]
    for pat in LLAMA_DEFAULT_PATS:
        out = []
        for p in pieces:
            last = 0
            for m in pat.finditer(p):
                if m.start() > last:
                    out.append(p[last:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                last = m.end()
            if last < len(p):
                out.append(p[last:])
        pieces = out
    return pieces


class BPETokenizer:
    def __init__(self, merges: list[tuple[str, str]]):
        self.merges = list(merges)
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        # a merge can recreate an existing string through another split; each string is one token
        self.tokens = [B2U[b] for b in range(256)]
        known = set(self.tokens)
        for a, b in self.merges:
            if a + b not in known:
                known.add(a + b)
                self.tokens.append(a + b)
        self.tokens += SPECIALS
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        self.special_ids = {s: self.token_to_id[s] for s in SPECIALS}
        self._cache = {}
        self._special_re = regex.compile("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")")

    # ---- training
    @classmethod
    def train(cls, texts, vocab_size: int):
        n_merges = vocab_size - 256 - len(SPECIALS)
        words = Counter()
        for t in texts:
            for part in regex.split(r"<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>|<image>|</image>|<tile>|<row>", t):
                for chunk in GPT2_PAT.findall(part):
                    if LETTER_CHUNK.fullmatch(chunk):
                        words[tuple(B2U[b] for b in chunk.encode("utf-8"))] += 1
        vocab = {w: c for w, c in words.items() if len(w) > 1}
        merges = []
        seen_tokens = set(B2U.values())
        while True:
            pairs = Counter()
            for w, c in vocab.items():
                for i in range(len(w) - 1):
                    pairs[(w[i], w[i + 1])] += c
            if not pairs:
                break
            # deterministic: highest count, then lexicographic
            best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            if pairs[best] < 2:
                break
            merged = best[0] + best[1]
            if merged not in seen_tokens:
                seen_tokens.add(merged)
            merges.append(best)
            if len(seen_tokens) - 256 >= n_merges:
                break
            new_vocab = {}
            for w, c in vocab.items():
                if len(w) < 2:
                    continue
                out, i = [], 0
                while i < len(w):
                    if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                        out.append(merged)
                        i += 2
                    else:
                        out.append(w[i])
                        i += 1
                out = tuple(out)
                if len(out) > 1:
                    new_vocab[out] = new_vocab.get(out, 0) + c
            vocab = new_vocab
        return cls(merges)

    # ---- encoding
    def _bpe(self, chunk: str):
        ids = self._cache.get(chunk)
        if ids is not None:
            return ids
        word = [B2U[b] for b in chunk.encode("utf-8")]
        while len(word) > 1:
            best, best_rank = None, None
            for i in range(len(word) - 1):
                r = self.ranks.get((word[i], word[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            # merge every occurrence of that pair, left to right
            a, b = word[best], word[best + 1]
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids = [self.token_to_id[t] for t in word]
        self._cache[chunk] = ids
        return ids

    def encode(self, text: str, parse_special: bool = True, pretok: str = "gpt2"):
        parts = self._special_re.split(text) if parse_special else [text]
        ids = []
        for p in parts:
            if not p:
                continue
            if parse_special and p in self.special_ids:
                ids.append(self.special_ids[p])
                continue
            chunks = GPT2_PAT.findall(p) if pretok == "gpt2" else _split_llama_default(p)
            for c in chunks:
                ids.extend(self._bpe(c))
        return ids

    def decode(self, ids, skip_special: bool = True) -> str:
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in self.special_ids:
                if not skip_special:
                    out += t.encode("utf-8")
                continue
            out += bytes(U2B[ch] for ch in t)
        return out.decode("utf-8", errors="replace")

    @property
    def n_vocab(self):
        return len(self.tokens)

    def id(self, special: str) -> int:
        return self.special_ids[special]

    # ---- files
    def save(self, path: str):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"merges": [list(m) for m in self.merges]}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str):
        with open(path, encoding="utf-8") as f:
            return cls([tuple(m) for m in json.load(f)["merges"]])

    def token_types(self):
        return [3 if t in self.special_ids else 1 for t in self.tokens]
