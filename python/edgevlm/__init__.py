"""edgevlm for Python: the C API (include/edgevlm.h) through ctypes, no compiled extension.

    import edgevlm
    with edgevlm.Model("model.gguf", mmproj="mmproj.gguf", threads=2) as model:
        chat = model.session()
        chat.attach_image("photo.jpg")              # or bytes, or chat.attach_rgb(pixels, w, h)
        answer = chat.ask("What is written here?", temperature=0, on_text=print)

The shared library is found through $EDGEVLM_LIBRARY (a path), next to this package, or by the
system's loader (libedgevlm.so after `cmake --install`). Errors raise edgevlm.Error (subclasses
ImageError, ModelError, ContextFullError, CancelledError), with the library's message.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Callable, Iterable, Optional, Union

__all__ = ["Model", "Session", "Error", "ImageError", "ModelError", "ContextFullError", "CancelledError",
           "version"]

OK, INVALID_HANDLE, INVALID_ARGUMENT, MODEL, IMAGE, CONTEXT_FULL, CANCELLED, INTERNAL = range(8)


class Error(Exception):
    """A failed call: .status is the edgevlm_status, str() the library's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelError(Error):
    pass


class ImageError(Error):
    pass


class ContextFullError(Error):
    pass


class CancelledError(Error):
    pass


_ERRORS = {MODEL: ModelError, IMAGE: ImageError, CONTEXT_FULL: ContextFullError, CANCELLED: CancelledError}


def _find_library() -> str:
    env = os.environ.get("EDGEVLM_LIBRARY")
    if env:
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libedgevlm.so")
    if os.path.exists(here):
        return here
    found = ctypes.util.find_library("edgevlm")
    if not found:
        raise OSError("libedgevlm.so not found: set EDGEVLM_LIBRARY to its path or install edgevlm")
    return found


_lib = ctypes.CDLL(_find_library())
_TEXT_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p)


def _sig(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_p, _i, _d, _s = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
_sig("edgevlm_version", _s)
_sig("edgevlm_last_error", _s)
_sig("edgevlm_model_params_new", _p)
_sig("edgevlm_model_params_free", None, _p)
_sig("edgevlm_model_params_set_string", _i, _p, _s, _s)
_sig("edgevlm_model_params_set_int", _i, _p, _s, ctypes.c_int64)
_sig("edgevlm_model_params_set_double", _i, _p, _s, _d)
_sig("edgevlm_model_load", _i, _p, ctypes.POINTER(_p))
_sig("edgevlm_model_free", None, _p)
_sig("edgevlm_model_get_int", _i, _p, _s, ctypes.POINTER(ctypes.c_int64))
_sig("edgevlm_gen_params_new", _p)
_sig("edgevlm_gen_params_free", None, _p)
_sig("edgevlm_gen_params_set_int", _i, _p, _s, ctypes.c_int64)
_sig("edgevlm_gen_params_set_double", _i, _p, _s, _d)
_sig("edgevlm_gen_params_add_stop", _i, _p, _s)
_sig("edgevlm_session_new", _i, _p, ctypes.POINTER(_p))
_sig("edgevlm_session_free", None, _p)
_sig("edgevlm_session_error", _s, _p)
_sig("edgevlm_session_set_system", _i, _p, _s)
_sig("edgevlm_session_attach_image_file", _i, _p, _s)
_sig("edgevlm_session_attach_image_bytes", _i, _p, ctypes.c_char_p, ctypes.c_size_t)
_sig("edgevlm_session_attach_image_rgb", _i, _p, ctypes.c_char_p, _i, _i, ctypes.c_size_t)
_sig("edgevlm_session_ask", _i, _p, _s, _p, _TEXT_CALLBACK, _p)
_sig("edgevlm_session_answer", _s, _p)
_sig("edgevlm_session_get_double", _i, _p, _s, ctypes.POINTER(_d))
_sig("edgevlm_session_cancel", _i, _p)
_sig("edgevlm_session_reset", _i, _p)


def version() -> str:
    return _lib.edgevlm_version().decode()


def _utf8(s) -> bytes:
    return os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode("utf-8")


def _check(status: int, message: Optional[bytes] = None) -> None:
    if status != OK:
        msg = (message if message is not None else _lib.edgevlm_last_error()) or b""
        raise _ERRORS.get(status, Error)(status, msg.decode("utf-8", "replace"))


class Model:
    """A loaded language model (and vision model when mmproj is given), shared by its sessions."""

    _INTS = ("threads", "n_ctx", "max_tiles", "vit_batch")

    def __init__(self, model: Union[str, os.PathLike], mmproj: Union[str, os.PathLike, None] = None, *,
                 threads: int = 0, n_ctx: int = 0, kv_type: Optional[str] = None, tiling: Optional[str] = None,
                 max_tiles: Optional[int] = None, vit_batch: Optional[int] = None, low_memory: bool = False,
                 chat_template: Optional[str] = None, resample: Optional[str] = None,
                 vit_compat: Optional[str] = None):
        self._h = None
        params = _lib.edgevlm_model_params_new()
        try:
            _check(_lib.edgevlm_model_params_set_string(params, b"model", _utf8(model)))
            if mmproj is not None:
                _check(_lib.edgevlm_model_params_set_string(params, b"mmproj", _utf8(mmproj)))
            for name, value in (("kv_type", kv_type), ("tiling", tiling), ("chat_template", chat_template),
                                ("resample", resample), ("vit_compat", vit_compat)):
                if value is not None:
                    _check(_lib.edgevlm_model_params_set_string(params, name.encode(), _utf8(value)))
            for name, value in (("threads", threads), ("n_ctx", n_ctx), ("max_tiles", max_tiles),
                                ("vit_batch", vit_batch), ("low_memory", int(low_memory))):
                if value is not None:
                    _check(_lib.edgevlm_model_params_set_int(params, name.encode(), int(value)))
            h = ctypes.c_void_p()
            _check(_lib.edgevlm_model_load(params, ctypes.byref(h)))
            self._h = h.value
        finally:
            _lib.edgevlm_model_params_free(params)

    def info(self, name: str) -> int:
        """A fact about the model: n_ctx, n_vocab, n_embd, n_layer, has_vision, threads."""
        v = ctypes.c_int64()
        _check(_lib.edgevlm_model_get_int(self._h, name.encode(), ctypes.byref(v)))
        return v.value

    def session(self, system: Optional[str] = None) -> "Session":
        return Session(self, system)

    def close(self) -> None:
        """Releases this handle; sessions made from the model keep its weights until they close."""
        if self._h is not None:
            _lib.edgevlm_model_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Session:
    """One conversation. Images attached go with the next question; answers stream to on_text."""

    def __init__(self, model: Model, system: Optional[str] = None):
        h = ctypes.c_void_p()
        _check(_lib.edgevlm_session_new(model._h, ctypes.byref(h)))
        self._h = h.value
        if system:
            self._call(_lib.edgevlm_session_set_system, _utf8(system))

    def _call(self, fn, *args) -> None:
        status = fn(self._h, *args)
        if status != OK:
            _check(status, _lib.edgevlm_session_error(self._h) if status != INVALID_HANDLE else None)

    def attach_image(self, image: Union[str, os.PathLike, bytes, bytearray, memoryview]) -> None:
        """A file path, or the encoded bytes of a JPEG/PNG/BMP/GIF/PNM. Checked at once; encoded in the background."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            self._call(_lib.edgevlm_session_attach_image_bytes, data, len(data))
        else:
            self._call(_lib.edgevlm_session_attach_image_file, _utf8(image))

    def attach_rgb(self, pixels: Union[bytes, bytearray, memoryview], width: int, height: int) -> None:
        """8-bit RGB pixels, rows top to bottom, no padding (e.g. numpy_array.tobytes() of an HxWx3 uint8 array)."""
        data = bytes(pixels)
        if len(data) != width * height * 3:
            raise ImageError(IMAGE, f"{len(data)} bytes of pixels for {width} x {height} RGB")
        self._call(_lib.edgevlm_session_attach_image_rgb, data, width, height, 0)

    def ask(self, question: str, *, max_tokens: int = 256, temperature: float = 0.8, top_k: Optional[int] = None,
            top_p: Optional[float] = None, min_p: Optional[float] = None, seed: Optional[int] = None,
            stop: Iterable[str] = (), on_text: Optional[Callable[[str], Optional[bool]]] = None) -> str:
        """Answers the question, streaming pieces to on_text (return False from it to stop). Returns the answer."""
        g = _lib.edgevlm_gen_params_new()
        raised = []
        try:
            _check(_lib.edgevlm_gen_params_set_int(g, b"n_predict", int(max_tokens)))
            _check(_lib.edgevlm_gen_params_set_double(g, b"temperature", float(temperature)))
            for name, value in (("top_k", top_k), ("seed", seed)):
                if value is not None:
                    _check(_lib.edgevlm_gen_params_set_int(g, name.encode(), int(value)))
            for name, value in (("top_p", top_p), ("min_p", min_p)):
                if value is not None:
                    _check(_lib.edgevlm_gen_params_set_double(g, name.encode(), float(value)))
            for s in stop:
                _check(_lib.edgevlm_gen_params_add_stop(g, _utf8(s)))

            def trampoline(text, length, _user):
                if raised:
                    return 1
                try:
                    go_on = on_text(ctypes.string_at(text, length).decode("utf-8", "replace"))
                    return 1 if go_on is False else 0
                except BaseException as e:  # re-raised after the call: never across the C boundary
                    raised.append(e)
                    return 1

            cb = _TEXT_CALLBACK(trampoline) if on_text is not None else _TEXT_CALLBACK()
            self._call(_lib.edgevlm_session_ask, _utf8(question), g, cb, None)
        finally:
            _lib.edgevlm_gen_params_free(g)
        if raised:
            raise raised[0]
        return (_lib.edgevlm_session_answer(self._h) or b"").decode("utf-8", "replace")

    def stat(self, name: str) -> float:
        """A figure of the last answer: prompt_tokens, completion_tokens, n_past, n_ctx, images, tiles,
        prefill_ms, decode_ms, decode_tok_s, encode_wait_ms, vit_ms, stop_reason."""
        v = ctypes.c_double()
        self._call(_lib.edgevlm_session_get_double, name.encode(), ctypes.byref(v))
        return v.value

    def cancel(self) -> None:
        """Stops a running ask() (from another thread) within one decode step."""
        self._call(_lib.edgevlm_session_cancel)

    def reset(self) -> None:
        self._call(_lib.edgevlm_session_reset)

    def close(self) -> None:
        if getattr(self, "_h", None) is not None:
            _lib.edgevlm_session_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
