"""Tests of training/gguf_io.py: round trips of every metadata type and tensor type, and Q8_0 / Q4_0
blocks computed by hand from the GGML block definitions (not by the code under test)."""

import os
import struct
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_io as g  # noqa: E402

T = g.GGUFValueType
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")


def _roundtrip(w, tmp_path):
    p = tmp_path / "x.gguf"
    w.write(str(p))
    return g.GGUFReader(str(p))


def test_metadata_all_types_roundtrip(tmp_path):
    w = g.GGUFWriter()
    w.add("u8", 200, T.UINT8)
    w.add("i8", -100, T.INT8)
    w.add("u16", 60000, T.UINT16)
    w.add("i16", -30000, T.INT16)
    w.add("u32", 4000000000, T.UINT32)
    w.add("i32", -2000000000, T.INT32)
    w.add("f32", 1.5, T.FLOAT32)
    w.add("bool", True, T.BOOL)
    w.add("str", "héllo \u4e16\u754c")
    w.add("u64", 2**63 + 5, T.UINT64)
    w.add("i64", -(2**62), T.INT64)
    w.add("f64", 0.1, T.FLOAT64)
    w.add_array("arr.str", T.STRING, ["a", "", "ßç"])
    w.add_array("arr.i32", T.INT32, [1, -2, 3])
    w.add_array("arr.f32", T.FLOAT32, [0.5, -0.25])
    w.add_array("arr.bool", T.BOOL, [True, False, True])
    w.add_array("arr.nested", T.ARRAY, [g.GGUFArray(T.INT16, [1, 2]), g.GGUFArray(T.STRING, ["x"])])
    w.add_array("arr.empty", T.UINT8, [])
    r = _roundtrip(w, tmp_path)
    assert r.version == 3
    assert list(r.metadata) == list(w.metadata)
    for k, v in w.metadata.items():
        assert r.metadata[k].type == v.type, k
        assert r.metadata[k].value == v.value, k
    assert r.get("f64") == 0.1
    assert r.get("arr.nested")[1].items == ["x"]


def test_header_bytes_by_hand(tmp_path):
    w = g.GGUFWriter()
    w.add_u32("a", 7)
    b = w.serialize()
    # magic, version 3, 0 tensors, 1 kv, key "a" (u64 length 1), type UINT32 (4), value 7
    expected = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"a" + struct.pack("<II", 4, 7)
    assert b[: len(expected)] == expected
    assert len(b) % 32 == 0 and set(b[len(expected):]) <= {0}


def test_tensor_roundtrip_and_alignment(tmp_path):
    rng = np.random.default_rng(0)
    w = g.GGUFWriter()
    w.add("general.alignment", 64, T.UINT32)
    a = rng.standard_normal((3, 64)).astype(np.float32)
    w.add_tensor("f32", a, g.GGMLType.F32)
    w.add_tensor("f16", a, g.GGMLType.F16)
    w.add_tensor("q8", a, g.GGMLType.Q8_0)
    w.add_tensor("q4", a, g.GGMLType.Q4_0)
    w.add_tensor("vec", np.arange(5, dtype=np.float32))
    r = _roundtrip(w, tmp_path)
    assert r.alignment == 64
    for t in r.tensors.values():
        assert (r.data_offset + t.offset) % 64 == 0
    assert r.tensors["q4"].ne == [64, 3] and r.tensors["q4"].type == g.GGMLType.Q4_0
    assert np.array_equal(r.tensor("f32"), a)
    assert np.array_equal(r.tensor("f16"), a.astype(np.float16).astype(np.float32))
    assert np.array_equal(r.tensor("vec"), np.arange(5, dtype=np.float32))
    amax = np.abs(a).reshape(-1, 32).max(axis=1).repeat(32).reshape(a.shape)
    assert np.all(np.abs(r.tensor("q8") - a) <= amax / 127 * 0.5 + 1e-3 * amax)
    assert np.all(np.abs(r.tensor("q4") - a) <= amax / 8 * 0.5 + 2e-3 * amax)
    # re-encoding dequantized values must reproduce the same blocks (quantization is idempotent)
    assert g.quantize_q8_0(r.tensor("q8")) == bytes(r.tensors["q8"].data)


def test_q8_0_block_by_hand():
    x = np.zeros(32, dtype=np.float32)
    x[0], x[1], x[2], x[3] = 2.54, -1.27, 0.01, 0.015  # amax 2.54 → d = 0.02
    b = g.quantize_q8_0(x)
    assert len(b) == 34
    d = np.frombuffer(b[:2], dtype="<f2")[0]
    assert d == np.float16(0.02)
    q = np.frombuffer(b[2:], dtype=np.int8)
    # x/d = 127, -63.5 (half away from zero → -64), 0.5 → 1, 0.75 → 1
    assert q[:4].tolist() == [127, -64, 1, 1] and not q[4:].any()
    # dequantize a block written by hand: d = 0.5 (f16 0x3800), q = 0..31
    blk = struct.pack("<H", 0x3800) + bytes(range(32))
    assert np.array_equal(g.dequantize_q8_0(blk, 32), np.arange(32, dtype=np.float32) * 0.5)


def test_q4_0_block_by_hand():
    x = np.zeros(32, dtype=np.float32)
    x[0] = -8.0   # largest magnitude, negative → d = -8 / -8 = 1
    x[1] = 7.0
    x[16] = 3.2   # element 16 lives in the high nibble of byte 0
    x[17] = -2.5
    b = g.quantize_q4_0(x)
    assert len(b) == 18
    assert np.frombuffer(b[:2], dtype="<f2")[0] == 1.0
    qs = b[2:]
    # q = trunc(x/d + 8.5), clamp 15: -8→0, 7→15, 0→8, 3.2→11, -2.5→6
    assert qs[0] == (0 | (11 << 4))
    assert qs[1] == (15 | (6 << 4))
    assert all(v == (8 | (8 << 4)) for v in qs[2:])
    # hand-written block: d = 2.0 (f16 0x4000), byte j = low j%16, high 15 - j%16
    blk = struct.pack("<H", 0x4000) + bytes((j | ((15 - j) << 4)) for j in range(16))
    want = [2.0 * (j - 8) for j in range(16)] + [2.0 * (15 - j - 8) for j in range(16)]
    assert g.dequantize_q4_0(blk, 32).tolist() == want


def test_q4_0_positive_max_and_zero_block():
    x = np.zeros(64, dtype=np.float32)
    x[5] = 4.0  # positive max → d = -0.5, so 4.0 maps to q = 0 and dequantizes to -0.5 * (0 - 8) = 4
    out = g.dequantize_q4_0(g.quantize_q4_0(x), 64)
    assert out[5] == 4.0 and np.count_nonzero(out) == 1


def test_errors(tmp_path):
    p = tmp_path / "bad.gguf"
    p.write_bytes(b"GGUX" + b"\0" * 40)
    with pytest.raises(g.GGUFError, match="bad magic"):
        g.GGUFReader(str(p))
    w = g.GGUFWriter()
    w.add_tensor("t", np.ones((2, 32), np.float32), g.GGMLType.Q8_0)
    data = w.serialize()
    p.write_bytes(data[:-40])
    with pytest.raises(g.GGUFError, match="past the end|truncated"):
        g.GGUFReader(str(p))
    with pytest.raises(g.GGUFError, match="multiple of the block size"):
        g.GGUFWriter().add_tensor("t", np.ones(33, np.float32), g.GGMLType.Q4_0)


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "testdata/tokenizer/ggml-vocab-gpt-2.gguf")),
                    reason="shared test data absent")
def test_reads_real_vocab_file_and_rewrites_identically(tmp_path):
    src = os.path.join(SHARED, "testdata/tokenizer/ggml-vocab-gpt-2.gguf")
    r = g.GGUFReader(src)
    assert r.get("tokenizer.ggml.model") == "gpt2"
    toks = r.get("tokenizer.ggml.tokens")
    assert len(toks) == 50257 and toks[0] == "!"
    w = g.GGUFWriter()
    for k, v in r.metadata.items():
        w.add(k, v.value, v.type)
    for t in r.tensors.values():
        w.add_raw_tensor(t.name, t.ne, t.type, bytes(t.data))
    r2 = _roundtrip(w, tmp_path)
    assert {k: (v.type, v.value) for k, v in r2.metadata.items()} == {k: (v.type, v.value) for k, v in r.metadata.items()}


# ---------------------------------------------------------------------------------------------------
# the read-only block types


def _det_blocks(t, nblocks):
    """Deterministic pseudo-random blocks of type t, with fixed small f16 scales (d, m, dmin)."""
    be, bb = g._TYPE_SIZE[t]
    s = 12345 + t
    out = bytearray()
    for _ in range(nblocks * bb):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(s >> 24)
    b = np.frombuffer(bytes(out), dtype=np.dtype(g._BLOCK_DTYPES[t])).copy()
    for f in ("d", "m", "dmin"):
        if f in b.dtype.names:
            b[f] = np.float16(0.01) * (1 + (np.arange(len(b)) % 5)) * (1 if f != "m" else -1)
    return b.tobytes()


# sha256 (first 16 hex digits) of the float32 values ggml's own dequantize_row_* gives for
# _det_blocks (libggml-base.so of node-llama-cpp 3.21.1 through ctypes): bit-exact agreement.
_GGML_DEQUANT_SHA = {
    g.GGMLType.Q4_1: "57653be2634283a8", g.GGMLType.Q5_0: "335f9d52ec8e608b",
    g.GGMLType.Q5_1: "3cf77c12fffee6f2", g.GGMLType.IQ4_NL: "f6186dc65fc365f5",
    g.GGMLType.Q2_K: "85121fd962e908e7", g.GGMLType.Q3_K: "066c883f31682144",
    g.GGMLType.Q4_K: "da916ce3d0293df0", g.GGMLType.Q5_K: "a0ed5e1f461be7d3",
    g.GGMLType.Q6_K: "161e60606b934bde", g.GGMLType.IQ4_XS: "91572b97e97bed20",
}


@pytest.mark.parametrize("t", sorted(_GGML_DEQUANT_SHA))
def test_block_types_dequantize_as_ggml(t):
    import hashlib
    be, _ = g._TYPE_SIZE[t]
    nblocks = 24 if be == 256 else 96
    y = g.decode_tensor(_det_blocks(t, nblocks), t, nblocks * be)
    assert y.dtype == np.float32 and y.shape == (nblocks * be,)
    assert hashlib.sha256(y.tobytes()).hexdigest()[:16] == _GGML_DEQUANT_SHA[t], g.TYPE_NAMES[t]


def test_q4_k_block_by_hand():
    # d = 0.5, dmin = 0.25; sub-block 1: scale 3, min 2; sub-block 5: scale 17 = 1 | 1 << 4,
    # min 33 = 1 | 2 << 4 (low nibbles in byte 9, high bits in bits 6-7 of bytes 1 and 5).
    scales = [0, 3 | 1 << 6, 0, 0, 0, 2 | 2 << 6, 0, 0, 0, 1 | 1 << 4, 0, 0]
    qs = bytearray(128)
    qs[0] = 0x70        # element 32 (sub-block 1, high nibble of byte 0): 7
    qs[64 + 4] = 0xE0   # element 164 (sub-block 5): 14
    blk = struct.pack("<ee", 0.5, 0.25) + bytes(scales) + bytes(qs)
    y = g.decode_tensor(blk, g.GGMLType.Q4_K, 256)
    assert y[32] == np.float32(0.5 * 3 * 7 - 0.25 * 2)
    assert y[33] == np.float32(-0.25 * 2)
    assert y[164] == np.float32(0.5 * 17 * 14 - 0.25 * 33)
    assert y[0] == 0


def test_q6_k_and_iq4_xs_blocks_by_hand():
    ql, qh, sc = bytearray(128), bytearray(64), bytearray(16)
    sc[12] = 256 - 3                # scale −3 for sub-block 12
    ql[64 + 8] = 0x50               # element 200 = 128 + 64 + 8: high nibble of ql[64 + 8] = 5
    qh[32 + 8] = 2 << 4             # its two high bits (bits 4-5 of qh[32 + 8]) = 2
    blk = bytes(ql) + bytes(qh) + bytes(sc) + struct.pack("<e", 0.125)
    y = g.decode_tensor(blk, g.GGMLType.Q6_K, 256)
    assert y[200] == np.float32(0.125 * -3 * ((5 | 2 << 4) - 32))
    # IQ4_XS: sub-block 3 has scale 35 (low nibble 3: high half of scales_l[1]; high bits 2 at bits 6-7)
    qs = bytearray(128)
    qs[48 + 5] = 0xF0               # element 101 → level 0 (−127), element 117 → level 15 (113)
    blk = struct.pack("<eH", 1.0, 2 << 6) + bytes([0, 3 << 4, 0, 0]) + bytes(qs)
    y = g.decode_tensor(blk, g.GGMLType.IQ4_XS, 256)
    assert y[101] == np.float32(3 * -127) and y[117] == np.float32(3 * 113)


def test_block_types_row_bytes():
    assert g.row_bytes(g.GGMLType.Q4_K, 512) == 288
    assert g.row_bytes(g.GGMLType.Q5_0, 64) == 44
    assert g.row_bytes(g.GGMLType.IQ4_XS, 256) == 136
    with pytest.raises(g.GGUFError):
        g.row_bytes(g.GGMLType.Q6_K, 128)
