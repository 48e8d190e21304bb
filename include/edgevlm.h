/* edgevlm — on-device inference for multimodal LLMs (GGUF models). The C API.
 *
 *   edgevlm_model_params* p = edgevlm_model_params_new();
 *   edgevlm_model_params_set_string(p, "model", "model.gguf");
 *   edgevlm_model_params_set_string(p, "mmproj", "mmproj.gguf");
 *   edgevlm_model* m;
 *   if (edgevlm_model_load(p, &m) != EDGEVLM_OK) fprintf(stderr, "%s\n", edgevlm_last_error());
 *   edgevlm_session* s;
 *   edgevlm_session_new(m, &s);
 *   edgevlm_session_attach_image_file(s, "photo.jpg");   // encoding starts now, in the background
 *   edgevlm_session_ask(s, "What is written here?", NULL, on_text, user_data);
 *   edgevlm_session_free(s); edgevlm_model_free(m); edgevlm_model_params_free(p);
 *
 * ABI: every object is an opaque handle; options are set by name (unknown names are an error), so
 * new options never change a struct's layout. Strings are UTF-8 and NUL-terminated unless a length
 * is given.
 *
 * Errors: every call returns an edgevlm_status. The message of the last failed call on a handle is
 * edgevlm_session_error() / edgevlm_model_error() (owned by the handle, valid until its next call);
 * edgevlm_last_error() is the message of the last failed call on this thread, whatever the handle
 * (the only way to learn why edgevlm_model_load failed). Calls with a NULL, freed or foreign handle
 * return EDGEVLM_ERR_INVALID_HANDLE and never touch it.
 *
 * Ownership: the caller frees what it creates (…_new, …_load) with the matching …_free. A model
 * stays alive while sessions use it: edgevlm_model_free() releases the caller's handle, and the
 * weights go when the last session made from it is freed; the freed model handle itself is invalid
 * afterwards (calls on it return EDGEVLM_ERR_INVALID_HANDLE).
 *
 * Threads: models may be shared by any number of sessions on any threads. One session is used by
 * one thread at a time (calls on one session from two threads are serialized: the second waits),
 * except edgevlm_session_cancel(), which may be called from any thread while ask() runs and
 * returns at once. Parameter objects are not thread-safe. The token callback runs on the thread
 * that called ask().
 */
#ifndef EDGEVLM_H
#define EDGEVLM_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define EDGEVLM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define EDGEVLM_API __attribute__((visibility("default")))
#else
#define EDGEVLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum edgevlm_status {
  EDGEVLM_OK = 0,
  EDGEVLM_ERR_INVALID_HANDLE = 1,    /* NULL, freed or foreign handle */
  EDGEVLM_ERR_INVALID_ARGUMENT = 2,  /* a NULL pointer, an unknown option name, a bad value */
  EDGEVLM_ERR_MODEL = 3,             /* a model file that cannot be read or used */
  EDGEVLM_ERR_IMAGE = 4,             /* an image that cannot be read, or a model without vision */
  EDGEVLM_ERR_CONTEXT_FULL = 5,      /* the turn does not fit the context: reset the session */
  EDGEVLM_ERR_CANCELLED = 6,         /* cancelled before any text was generated; the turn is dropped */
  EDGEVLM_ERR_INTERNAL = 7
} edgevlm_status;

typedef struct edgevlm_model edgevlm_model;
typedef struct edgevlm_session edgevlm_session;
typedef struct edgevlm_model_params edgevlm_model_params;
typedef struct edgevlm_gen_params edgevlm_gen_params;

/* "0.4.0": the library's version. */
EDGEVLM_API const char* edgevlm_version(void);
/* A short name for a status ("ok", "invalid handle", ...). */
EDGEVLM_API const char* edgevlm_status_name(edgevlm_status s);
/* The message of the last failed call on this thread ("" when none); valid until the next call. */
EDGEVLM_API const char* edgevlm_last_error(void);

/* ---- Model ------------------------------------------------------------------------------- */
/* Options, by name:
 *   strings: "model" (GGUF language model, required), "mmproj" (vision GGUF, optional),
 *            "kv_type" (q8 | f16 | f32), "tiling" (relaxed | llava-next | internvl | single | idefics3 |
 *            lfm2 | qwen2vl, or a family's llama.cpp-compatible idefics3-mtmd | internvl-mtmd | lfm2-mtmd; default:
 *            the model family's own), "resample" (bicubic | lanczos | bilinear | llama-cpp-bicubic |
 *            llama-cpp-bilinear | mtmd: llama.cpp's for the model's family), "vit_compat" (mtmd: InternViT
 *            as llama.cpp runs it),
 *            "chat_template" (auto | chatml | llama3 | none),
 *            "lora" ("FILE" or "FILE:SCALE": a LoRA adapter GGUF on the decoder, or on the vision model
 *            when its general.architecture is clip; each call adds one),
 *            "lora_mode" (auto: merged into F32 matrices, on the fly elsewhere | on-the-fly)
 *   ints:    "threads" (0 = all hardware threads), "n_ctx" (0 = the model's, at most 4096),
 *            "max_tiles", "vit_batch", "low_memory" (0/1), "vit_pipeline" (0/1)
 *   doubles: "alpha" (relaxed aspect-ratio matching)                                          */
EDGEVLM_API edgevlm_model_params* edgevlm_model_params_new(void);
EDGEVLM_API void edgevlm_model_params_free(edgevlm_model_params* p);
EDGEVLM_API edgevlm_status edgevlm_model_params_set_string(edgevlm_model_params* p, const char* name, const char* value);
EDGEVLM_API edgevlm_status edgevlm_model_params_set_int(edgevlm_model_params* p, const char* name, int64_t value);
EDGEVLM_API edgevlm_status edgevlm_model_params_set_double(edgevlm_model_params* p, const char* name, double value);

/* Loads the model (and the mmproj when given). On failure *out is NULL; edgevlm_last_error() says why. */
EDGEVLM_API edgevlm_status edgevlm_model_load(const edgevlm_model_params* p, edgevlm_model** out);
EDGEVLM_API void edgevlm_model_free(edgevlm_model* m);
EDGEVLM_API const char* edgevlm_model_error(const edgevlm_model* m);
/* Facts about the model, by name: "n_ctx", "n_vocab", "n_embd", "n_layer", "has_vision", "threads". */
EDGEVLM_API edgevlm_status edgevlm_model_get_int(const edgevlm_model* m, const char* name, int64_t* value);

/* ---- Generation parameters --------------------------------------------------------------- */
/* ints: "n_predict" (default 256; -1 = until the context is full), "top_k", "seed", "chunk"
 * doubles: "temperature" (default 0.8; 0 = greedy), "top_p", "min_p", "repeat_penalty"
 * edgevlm_gen_params_add_stop adds a stop string (not included in the answer).               */
EDGEVLM_API edgevlm_gen_params* edgevlm_gen_params_new(void);
EDGEVLM_API void edgevlm_gen_params_free(edgevlm_gen_params* g);
EDGEVLM_API edgevlm_status edgevlm_gen_params_set_int(edgevlm_gen_params* g, const char* name, int64_t value);
EDGEVLM_API edgevlm_status edgevlm_gen_params_set_double(edgevlm_gen_params* g, const char* name, double value);
EDGEVLM_API edgevlm_status edgevlm_gen_params_add_stop(edgevlm_gen_params* g, const char* stop);

/* ---- Session: one conversation ----------------------------------------------------------- */
EDGEVLM_API edgevlm_status edgevlm_session_new(edgevlm_model* m, edgevlm_session** out);
/* Sets the system message; takes effect now if the conversation is empty, else after a reset. */
EDGEVLM_API edgevlm_status edgevlm_session_set_system(edgevlm_session* s, const char* system_prompt);
EDGEVLM_API void edgevlm_session_free(edgevlm_session* s);
EDGEVLM_API const char* edgevlm_session_error(const edgevlm_session* s);

/* Attach an image for the next question. Each call checks the image at once (readable, a known
 * format, within the size limits) and fails with EDGEVLM_ERR_IMAGE otherwise, keeping the images
 * already attached; decoding and encoding then run in the background. Bytes are copied. */
EDGEVLM_API edgevlm_status edgevlm_session_attach_image_file(edgevlm_session* s, const char* path);
EDGEVLM_API edgevlm_status edgevlm_session_attach_image_bytes(edgevlm_session* s, const void* data, size_t size);
/* 8-bit RGB, rows top to bottom, `stride` bytes apart (0 = width * 3). */
EDGEVLM_API edgevlm_status edgevlm_session_attach_image_rgb(edgevlm_session* s, const uint8_t* pixels, int width,
                                                            int height, size_t stride);

/* Called with each piece of the answer as it is generated: whole UTF-8 characters, `text` NUL-
 * terminated and `len` bytes long. Return 0 to go on, non-zero to stop the answer there. */
typedef int (*edgevlm_text_callback)(const char* text, size_t len, void* user_data);

/* Asks a question about the images attached since the last ask (they go before the question unless
 * it places them with "<image>"), streaming the answer to `cb` (may be NULL). `g` may be NULL for
 * the defaults. The session keeps the conversation: the next ask continues it. */
EDGEVLM_API edgevlm_status edgevlm_session_ask(edgevlm_session* s, const char* question, const edgevlm_gen_params* g,
                                               edgevlm_text_callback cb, void* user_data);
/* The whole last answer (UTF-8, owned by the session, valid until its next call). */
EDGEVLM_API const char* edgevlm_session_answer(const edgevlm_session* s);
/* Figures of the last answer, by name: "prompt_tokens", "completion_tokens", "n_past", "n_ctx",
 * "images", "tiles", "prefill_ms", "decode_ms", "decode_tok_s", "encode_wait_ms", "vit_ms".
 * "stop_reason": 0 end of generation, 1 stop string, 2 max tokens, 3 context full, 4 callback, 5 cancelled. */
EDGEVLM_API edgevlm_status edgevlm_session_get_double(const edgevlm_session* s, const char* name, double* value);

/* Stops a running ask within one decode step (or prefill chunk); no effect when none runs. Any thread. */
EDGEVLM_API edgevlm_status edgevlm_session_cancel(edgevlm_session* s);
/* Forgets the conversation and any images not yet asked about. */
EDGEVLM_API edgevlm_status edgevlm_session_reset(edgevlm_session* s);

#ifdef __cplusplus
}
#endif

#endif /* EDGEVLM_H */
