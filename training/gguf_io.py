"""GGUF v3 reader and writer in pure Python + numpy.

Written from the GGUF specification (ggml/docs/gguf.md), independently of the C++ reader, so that the
numpy reference forward (bench/reference_llama.py) and the training export do not share code with the
engine they check. Metadata of every type (nested arrays included); tensors F32, F16, Q8_0 and Q4_0
in the standard GGML block layouts, bit-exact with ggml's reference quantizers; reading also
Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS (the types of llama-quantize's
Q4_K_M, Q5_K_M, Q6_K, Q3_K_M and IQ4_XS files), dequantized with ggml's float32 arithmetic.

Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, KV pairs, tensor infos
(name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset), padding to general.alignment, data.
ne[0] is the fastest-varying dimension (the row length); numpy arrays here have shape ne[::-1].
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32


class GGUFValueType:
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# struct format and numpy dtype for each scalar type
_SCALAR = {
    GGUFValueType.UINT8: ("<B", np.uint8),
    GGUFValueType.INT8: ("<b", np.int8),
    GGUFValueType.UINT16: ("<H", np.uint16),
    GGUFValueType.INT16: ("<h", np.int16),
    GGUFValueType.UINT32: ("<I", np.uint32),
    GGUFValueType.INT32: ("<i", np.int32),
    GGUFValueType.FLOAT32: ("<f", np.float32),
    GGUFValueType.BOOL: ("<?", np.bool_),
    GGUFValueType.UINT64: ("<Q", np.uint64),
    GGUFValueType.INT64: ("<q", np.int64),
    GGUFValueType.FLOAT64: ("<d", np.float64),
}


class GGMLType:
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    IQ4_NL = 20
    IQ4_XS = 23


QK = 32  # elements per Q8_0 / Q4_0 block
QK_K = 256  # elements per K-quant super-block
# (elements per block, bytes per block)
_TYPE_SIZE = {
    GGMLType.F32: (1, 4),
    GGMLType.F16: (1, 2),
    GGMLType.Q8_0: (QK, 2 + QK),
    GGMLType.Q4_0: (QK, 2 + QK // 2),
    GGMLType.Q4_1: (QK, 4 + QK // 2),
    GGMLType.Q5_0: (QK, 6 + QK // 2),
    GGMLType.Q5_1: (QK, 8 + QK // 2),
    GGMLType.IQ4_NL: (QK, 2 + QK // 2),
    GGMLType.Q2_K: (QK_K, 84),
    GGMLType.Q3_K: (QK_K, 110),
    GGMLType.Q4_K: (QK_K, 144),
    GGMLType.Q5_K: (QK_K, 176),
    GGMLType.Q6_K: (QK_K, 210),
    GGMLType.IQ4_XS: (QK_K, 136),
}
TYPE_NAMES = {GGMLType.F32: "f32", GGMLType.F16: "f16", GGMLType.Q8_0: "q8_0", GGMLType.Q4_0: "q4_0",
              GGMLType.Q4_1: "q4_1", GGMLType.Q5_0: "q5_0", GGMLType.Q5_1: "q5_1", GGMLType.IQ4_NL: "iq4_nl",
              GGMLType.Q2_K: "q2_k", GGMLType.Q3_K: "q3_k", GGMLType.Q4_K: "q4_k", GGMLType.Q5_K: "q5_k",
              GGMLType.Q6_K: "q6_k", GGMLType.IQ4_XS: "iq4_xs"}
TYPE_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}


class GGUFError(Exception):
    pass


@dataclass
class GGUFArray:
    """A metadata array: elem_type is a GGUFValueType; items are Python values (GGUFArray for nested)."""

    elem_type: int
    items: list

    def __len__(self):
        return len(self.items)


@dataclass
class GGUFValue:
    type: int
    value: Any


@dataclass
class TensorInfo:
    name: str
    ne: list[int]          # fastest-varying first
    type: int
    offset: int            # relative to the start of the data section
    data: memoryview | bytes = b""

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n

    @property
    def shape(self) -> tuple:
        return tuple(reversed(self.ne))


def row_bytes(ggml_type: int, n: int) -> int:
    if ggml_type not in _TYPE_SIZE:
        raise GGUFError(f"unsupported tensor type {ggml_type}")
    be, bb = _TYPE_SIZE[ggml_type]
    if n % be:
        raise GGUFError(f"row of {n} elements is not a multiple of the block size {be} of {TYPE_NAMES[ggml_type]}")
    return n // be * bb


# ---------------------------------------------------------------------------------------------------
# quantization (mirrors ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref, float32 arithmetic)

def _roundf(x: np.ndarray) -> np.ndarray:
    """C roundf: halves away from zero (np.round rounds halves to even)."""
    r = np.round(x)
    t = np.trunc(x)
    half = np.abs(x - t) == np.float32(0.5)
    return np.where(half, t + np.sign(x), r)


def quantize_q8_0(x: np.ndarray) -> bytes:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = _roundf((x * inv[:, None]).astype(np.float32)).astype(np.int8)
    out = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (QK,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = q
    return out.tobytes()


def quantize_q4_0(x: np.ndarray) -> bytes:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK)
    # the signed value of largest magnitude (first one on ties, like ggml's strict '>')
    idx = np.argmax(np.abs(x), axis=1)
    vmax = x[np.arange(x.shape[0]), idx]
    d = (vmax / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    x0 = (x * inv[:, None]).astype(np.float32)
    q = np.trunc((x0 + np.float32(8.5)).astype(np.float32)).astype(np.int32)
    q = np.clip(q, 0, 15).astype(np.uint8)  # ggml: MIN(15, (int8_t)(x0 + 8.5f)); x0 >= -8 so >= 0
    packed = (q[:, : QK // 2] | (q[:, QK // 2:] << 4)).astype(np.uint8)
    out = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "u1", (QK // 2,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = packed
    return out.tobytes()


def dequantize_q8_0(buf, n: int) -> np.ndarray:
    blocks = np.frombuffer(buf, dtype=[("d", "<f2"), ("qs", "i1", (QK,))], count=n // QK)
    return (blocks["d"].astype(np.float32)[:, None] * blocks["qs"].astype(np.float32)).reshape(-1)


def dequantize_q4_0(buf, n: int) -> np.ndarray:
    blocks = np.frombuffer(buf, dtype=[("d", "<f2"), ("qs", "u1", (QK // 2,))], count=n // QK)
    lo = (blocks["qs"] & 0x0F).astype(np.int32) - 8
    hi = (blocks["qs"] >> 4).astype(np.int32) - 8
    q = np.concatenate([lo, hi], axis=1).astype(np.float32)
    return (blocks["d"].astype(np.float32)[:, None] * q).reshape(-1)


# ---------------------------------------------------------------------------------------------------
# the other block types (read only): layouts from ggml-common.h, float32 arithmetic in ggml's order
# (products left to right, as ggml's dequantize_row_* compute them), so values are bit-exact.

IQ4NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.int8)

_BLOCK_DTYPES = {
    GGMLType.Q4_1: [("d", "<f2"), ("m", "<f2"), ("qs", "u1", (16,))],
    GGMLType.Q5_0: [("d", "<f2"), ("qh", "<u4"), ("qs", "u1", (16,))],
    GGMLType.Q5_1: [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", (16,))],
    GGMLType.IQ4_NL: [("d", "<f2"), ("qs", "u1", (16,))],
    GGMLType.Q2_K: [("scales", "u1", (16,)), ("qs", "u1", (64,)), ("d", "<f2"), ("dmin", "<f2")],
    GGMLType.Q3_K: [("hmask", "u1", (32,)), ("qs", "u1", (64,)), ("scales", "u1", (12,)), ("d", "<f2")],
    GGMLType.Q4_K: [("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", (12,)), ("qs", "u1", (128,))],
    GGMLType.Q5_K: [("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", (12,)), ("qh", "u1", (32,)),
                    ("qs", "u1", (128,))],
    GGMLType.Q6_K: [("ql", "u1", (128,)), ("qh", "u1", (64,)), ("scales", "i1", (16,)), ("d", "<f2")],
    GGMLType.IQ4_XS: [("d", "<f2"), ("scales_h", "<u2"), ("scales_l", "u1", (4,)), ("qs", "u1", (128,))],
}


def _blocks(buf, ggml_type: int, n: int):
    be, bb = _TYPE_SIZE[ggml_type]
    dt = np.dtype(_BLOCK_DTYPES[ggml_type])
    assert dt.itemsize == bb, (TYPE_NAMES[ggml_type], dt.itemsize)
    return np.frombuffer(buf, dtype=dt, count=n // be)


def _f32(a) -> np.ndarray:
    return np.asarray(a).astype(np.float32)


def _nibbles32(qs: np.ndarray) -> np.ndarray:
    """[..., 16] bytes → [..., 32] values: low nibbles are elements 0-15, high nibbles 16-31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int32)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """[nb] uint32 → [nb, 32]: bit j of qh is the fifth bit of element j."""
    return ((qh[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32)


def _two_bits(qs: np.ndarray) -> np.ndarray:
    """[nb, 64] Q2_K/Q3_K bytes → [nb, 256]: element 128h + 32s + l at bits 2s of byte 32h + l."""
    q = qs.reshape(-1, 2, 1, 32) >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)
    return (q & 3).reshape(-1, QK_K).astype(np.int32)


def _scale_min_k4(scales: np.ndarray):
    """[nb, 12] packed Q4_K/Q5_K scales → (sc [nb, 8], m [nb, 8]) 6-bit integers."""
    q = scales.astype(np.int32)
    sc = np.empty((q.shape[0], 8), np.int32)
    m = np.empty((q.shape[0], 8), np.int32)
    sc[:, :4] = q[:, 0:4] & 63
    m[:, :4] = q[:, 4:8] & 63
    sc[:, 4:] = (q[:, 8:12] & 0xF) | ((q[:, 0:4] >> 6) << 4)
    m[:, 4:] = (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)
    return sc, m


def dequantize_blocks(buf, ggml_type: int, n: int) -> np.ndarray:
    """Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS bytes → float32[n]."""
    b = _blocks(buf, ggml_type, n)
    t = GGMLType
    if ggml_type in (t.Q4_1, t.Q5_0, t.Q5_1, t.IQ4_NL):
        q = _nibbles32(b["qs"])
        d = _f32(b["d"])[:, None]
        if ggml_type == t.IQ4_NL:
            return (d * _f32(IQ4NL_VALUES[q])).reshape(-1)
        if ggml_type in (t.Q5_0, t.Q5_1):
            q = q | (_fifth_bits(b["qh"]) << 4)
        if ggml_type == t.Q5_0:
            return (_f32(q - 16) * d).reshape(-1)
        return (_f32(q) * d + _f32(b["m"])[:, None]).reshape(-1)
    if ggml_type == t.Q2_K:
        q = _f32(_two_bits(b["qs"])).reshape(-1, 16, 16)
        sc = b["scales"]
        dl = (_f32(b["d"])[:, None] * _f32(sc & 0xF))[:, :, None]
        ml = (_f32(b["dmin"])[:, None] * _f32(sc >> 4))[:, :, None]
        return (dl * q - ml).reshape(-1)
    if ggml_type == t.Q3_K:
        lo = _two_bits(b["qs"])
        hm = b["hmask"].astype(np.int32)  # element e: bit e // 32 of hmask[e % 32]
        e = np.arange(QK_K)
        hi = (hm[:, e % 32] >> (e // 32)) & 1
        q = _f32(lo - np.where(hi == 1, 0, 4)).reshape(-1, 16, 16)
        s = b["scales"].astype(np.int32)
        j = np.arange(16)
        low = np.where(j < 8, s[:, j % 8] & 0xF, s[:, j % 8] >> 4)
        high = (s[:, 8 + j % 4] >> (2 * (j // 4))) & 3
        sc = (low | (high << 4)) - 32
        dl = (_f32(b["d"])[:, None] * _f32(sc))[:, :, None]
        return (dl * q).reshape(-1)
    if ggml_type in (t.Q4_K, t.Q5_K):
        sc, m = _scale_min_k4(b["scales"])
        qs = b["qs"].reshape(-1, 4, 32)
        q = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.int32)  # sub-block 2k, 2k+1
        if ggml_type == t.Q5_K:
            qh = b["qh"].astype(np.int32)  # element 32s + l: bit s of qh[l]
            q = q | (((qh[:, None, :] >> np.arange(8).reshape(1, 8, 1)) & 1) << 4)
        d1 = (_f32(b["d"])[:, None] * _f32(sc))[:, :, None]
        m1 = (_f32(b["dmin"])[:, None] * _f32(m))[:, :, None]
        return (d1 * _f32(q) - m1).reshape(-1)
    if ggml_type == t.Q6_K:
        ql = b["ql"].reshape(-1, 2, 2, 32)  # [half, which 32 bytes, l]
        qh = b["qh"].reshape(-1, 2, 1, 32).astype(np.int32)
        low = np.concatenate([ql & 0x0F, ql >> 4], axis=2).astype(np.int32)  # s = 0, 1, 2, 3
        high = (qh >> (2 * np.arange(4).reshape(1, 1, 4, 1))) & 3
        q = ((low | (high << 4)) - 32).reshape(-1, 16, 16)
        dsc = (_f32(b["d"])[:, None] * _f32(b["scales"]))[:, :, None]
        return (dsc * _f32(q)).reshape(-1)
    if ggml_type == t.IQ4_XS:
        j = np.arange(8)
        sl = (b["scales_l"][:, j // 2].astype(np.int32) >> (4 * (j % 2))) & 0xF
        sh = (b["scales_h"][:, None].astype(np.int32) >> (2 * j)) & 3
        dl = (_f32(b["d"])[:, None] * _f32((sl | (sh << 4)) - 32))[:, :, None]
        q = _nibbles32(b["qs"].reshape(-1, 8, 16))
        return (dl * _f32(IQ4NL_VALUES[q])).reshape(-1)
    raise GGUFError(f"cannot decode tensor type {ggml_type}")


def encode_tensor(values: np.ndarray, ggml_type: int) -> bytes:
    values = np.asarray(values, dtype=np.float32)
    if ggml_type == GGMLType.F32:
        return values.astype("<f4").tobytes()
    if ggml_type == GGMLType.F16:
        return values.astype("<f2").tobytes()
    if ggml_type == GGMLType.Q8_0:
        return quantize_q8_0(values)
    if ggml_type == GGMLType.Q4_0:
        return quantize_q4_0(values)
    raise GGUFError(f"cannot encode tensor type {ggml_type}")


def decode_tensor(buf, ggml_type: int, n: int) -> np.ndarray:
    """Raw tensor bytes → float32 vector of n elements."""
    if ggml_type == GGMLType.F32:
        return np.frombuffer(buf, dtype="<f4", count=n).astype(np.float32)
    if ggml_type == GGMLType.F16:
        return np.frombuffer(buf, dtype="<f2", count=n).astype(np.float32)
    if ggml_type == GGMLType.Q8_0:
        return dequantize_q8_0(buf, n)
    if ggml_type == GGMLType.Q4_0:
        return dequantize_q4_0(buf, n)
    if ggml_type in _BLOCK_DTYPES:
        return dequantize_blocks(buf, ggml_type, n)
    raise GGUFError(f"cannot decode tensor type {ggml_type}")


# ---------------------------------------------------------------------------------------------------
# reading

class _Cursor:
    def __init__(self, buf, name):
        self.buf = buf
        self.pos = 0
        self.name = name

    def take(self, n: int):
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"{self.name}: truncated at byte {self.pos} (need {n} more bytes)")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        return bytes(self.take(n)).decode("utf-8", errors="surrogateescape")


def _read_value(cur: _Cursor, vtype: int, depth: int = 0):
    if vtype in _SCALAR:
        return cur.scalar(_SCALAR[vtype][0])
    if vtype == GGUFValueType.STRING:
        return cur.string()
    if vtype == GGUFValueType.ARRAY:
        if depth > 8:
            raise GGUFError(f"{cur.name}: arrays nested too deeply")
        etype = cur.scalar("<I")
        count = cur.scalar("<Q")
        if etype in _SCALAR and etype != GGUFValueType.BOOL:
            fmt, dt = _SCALAR[etype]
            raw = cur.take(count * np.dtype(dt).itemsize)
            return GGUFArray(etype, np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<")).tolist())
        if count > len(cur.buf):
            raise GGUFError(f"{cur.name}: array count {count} exceeds the file size")
        return GGUFArray(etype, [_read_value(cur, etype, depth + 1) for _ in range(count)])
    raise GGUFError(f"{cur.name}: unknown metadata value type {vtype}")


class GGUFReader:
    """Reads a whole GGUF file. metadata: dict key → GGUFValue (file order); tensors: dict name → TensorInfo."""

    def __init__(self, path: str):
        self.path = path
        self._mm = np.memmap(path, dtype=np.uint8, mode="r")
        buf = memoryview(self._mm)
        cur = _Cursor(buf, path)
        if bytes(cur.take(4)) != GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (bad magic)")
        self.version = cur.scalar("<I")
        if self.version not in (2, 3):
            raise GGUFError(f"{path}: unsupported GGUF version {self.version}")
        n_tensors = cur.scalar("<Q")
        n_kv = cur.scalar("<Q")
        self.metadata: dict[str, GGUFValue] = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.scalar("<I")
            self.metadata[key] = GGUFValue(vtype, _read_value(cur, vtype))
        self.alignment = int(self.get("general.alignment", DEFAULT_ALIGNMENT))
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.scalar("<I")
            if n_dims > 4:
                raise GGUFError(f"{path}: tensor {name} has {n_dims} dimensions")
            ne = [cur.scalar("<Q") for _ in range(n_dims)]
            ttype = cur.scalar("<I")
            offset = cur.scalar("<Q")
            infos.append(TensorInfo(name, ne, ttype, offset))
        self.data_offset = (cur.pos + self.alignment - 1) // self.alignment * self.alignment
        self.tensors: dict[str, TensorInfo] = {}
        for t in infos:
            nbytes = row_bytes(t.type, t.ne[0]) * (t.n_elements // t.ne[0]) if t.ne else 0
            start = self.data_offset + t.offset
            if start + nbytes > len(buf):
                raise GGUFError(f"{path}: tensor {t.name} data runs past the end of the file")
            t.data = buf[start:start + nbytes]
            self.tensors[t.name] = t

    def get(self, key: str, default=None):
        v = self.metadata.get(key)
        if v is None:
            return default
        if isinstance(v.value, GGUFArray):
            return v.value.items
        return v.value

    def tensor(self, name: str) -> np.ndarray:
        """The tensor dequantized to float32, shaped ne[::-1]."""
        t = self.tensors.get(name)
        if t is None:
            raise GGUFError(f"{self.path}: no tensor named {name}")
        return decode_tensor(t.data, t.type, t.n_elements).reshape(t.shape)


# ---------------------------------------------------------------------------------------------------
# writing

def _infer_type(value) -> int:
    if isinstance(value, GGUFArray):
        return GGUFValueType.ARRAY
    if isinstance(value, bool):
        return GGUFValueType.BOOL
    if isinstance(value, int):
        return GGUFValueType.INT32 if -2**31 <= value < 2**31 else GGUFValueType.INT64
    if isinstance(value, float):
        return GGUFValueType.FLOAT32
    if isinstance(value, str):
        return GGUFValueType.STRING
    raise GGUFError(f"cannot infer a GGUF type for {type(value).__name__}")


def _pack_string(s: str) -> bytes:
    b = s.encode("utf-8", errors="surrogateescape")
    return struct.pack("<Q", len(b)) + b


def _pack_value(vtype: int, value) -> bytes:
    if vtype in _SCALAR:
        return struct.pack(_SCALAR[vtype][0], value)
    if vtype == GGUFValueType.STRING:
        return _pack_string(value)
    if vtype == GGUFValueType.ARRAY:
        if not isinstance(value, GGUFArray):
            raise GGUFError("an ARRAY value must be a GGUFArray")
        head = struct.pack("<IQ", value.elem_type, len(value.items))
        et = value.elem_type
        if et in _SCALAR and et != GGUFValueType.BOOL:
            return head + np.asarray(value.items, dtype=np.dtype(_SCALAR[et][1]).newbyteorder("<")).tobytes()
        return head + b"".join(_pack_value(et, v) for v in value.items)
    raise GGUFError(f"unknown metadata value type {vtype}")


@dataclass
class _PendingTensor:
    name: str
    ne: list[int]
    type: int
    data: bytes


@dataclass
class GGUFWriter:
    metadata: dict = field(default_factory=dict)   # key → GGUFValue
    tensors: list = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT

    def add(self, key: str, value, vtype: int | None = None):
        """Adds or replaces a metadata value; vtype defaults to one inferred from the Python value."""
        if vtype is None:
            vtype = _infer_type(value)
        if key == "general.alignment":
            self.alignment = int(value)
        self.metadata[key] = GGUFValue(vtype, value)

    def add_u32(self, key, v):
        self.add(key, int(v), GGUFValueType.UINT32)

    def add_f32(self, key, v):
        self.add(key, float(v), GGUFValueType.FLOAT32)

    def add_string(self, key, v):
        self.add(key, str(v), GGUFValueType.STRING)

    def add_bool(self, key, v):
        self.add(key, bool(v), GGUFValueType.BOOL)

    def add_array(self, key, elem_type: int, items):
        self.add(key, GGUFArray(elem_type, list(items)), GGUFValueType.ARRAY)

    def add_tensor(self, name: str, values: np.ndarray, ggml_type: int = GGMLType.F32):
        """values: float array shaped ne[::-1] (row length last); stored as ggml_type."""
        values = np.asarray(values, dtype=np.float32)
        ne = list(reversed(values.shape))
        row_bytes(ggml_type, ne[0])  # validates block alignment
        self.tensors.append(_PendingTensor(name, ne, ggml_type, encode_tensor(values, ggml_type)))

    def add_raw_tensor(self, name: str, ne: list[int], ggml_type: int, data: bytes):
        n = 1
        for d in ne:
            n *= d
        expected = row_bytes(ggml_type, ne[0]) * (n // ne[0])
        if len(data) != expected:
            raise GGUFError(f"tensor {name}: {len(data)} bytes given, {expected} expected")
        self.tensors.append(_PendingTensor(name, list(ne), ggml_type, bytes(data)))

    def serialize(self) -> bytes:
        pad = lambda n: (n + self.alignment - 1) // self.alignment * self.alignment
        out = bytearray()
        out += GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.metadata))
        for key, v in self.metadata.items():
            out += _pack_string(key) + struct.pack("<I", v.type) + _pack_value(v.type, v.value)
        offset = 0
        offsets = []
        for t in self.tensors:
            offsets.append(offset)
            out += _pack_string(t.name) + struct.pack("<I", len(t.ne))
            out += struct.pack(f"<{len(t.ne)}Q", *t.ne) + struct.pack("<IQ", t.type, offset)
            offset = pad(offset + len(t.data))
        out += b"\0" * (pad(len(out)) - len(out))
        base = len(out)
        for t, off in zip(self.tensors, offsets):
            out += b"\0" * (base + off - len(out))
            out += t.data
        out += b"\0" * (pad(len(out)) - len(out))
        return bytes(out)

    def write(self, path: str):
        with open(path, "wb") as f:
            f.write(self.serialize())
