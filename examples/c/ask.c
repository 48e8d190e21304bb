/* Asks a question about an image with edgevlm's C API: load the model pair, attach the image from
 * memory (as an app would after a camera capture or a download), ask, and stream the answer.
 *
 *   ask MODEL.gguf MMPROJ.gguf IMAGE "question"
 */
#include <edgevlm.h>

#include <stdio.h>
#include <stdlib.h>

static int print_piece(const char* text, size_t len, void* user_data) {
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0; /* 0: go on; non-zero would stop the answer here */
}

static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* buf = n > 0 ? malloc((size_t)n) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = buf ? (size_t)n : 0;
  return buf;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL.gguf MMPROJ.gguf IMAGE QUESTION\n", argv[0]);
    return 2;
  }
  edgevlm_model_params* params = edgevlm_model_params_new();
  edgevlm_model_params_set_string(params, "model", argv[1]);
  edgevlm_model_params_set_string(params, "mmproj", argv[2]);
  edgevlm_model* model = NULL;
  if (edgevlm_model_load(params, &model) != EDGEVLM_OK) {
    fprintf(stderr, "error: %s\n", edgevlm_last_error());
    edgevlm_model_params_free(params);
    return 1;
  }
  edgevlm_model_params_free(params);

  edgevlm_session* session = NULL;
  edgevlm_session_new(model, &session);
  size_t size = 0;
  unsigned char* bytes = read_file(argv[3], &size);
  if (!bytes || edgevlm_session_attach_image_bytes(session, bytes, size) != EDGEVLM_OK) {
    fprintf(stderr, "error: %s: %s\n", argv[3], bytes ? edgevlm_session_error(session) : "cannot read");
    free(bytes);
    return 1;
  }
  free(bytes); /* the session keeps its own copy; encoding has started in the background */

  edgevlm_gen_params* gen = edgevlm_gen_params_new();
  edgevlm_gen_params_set_double(gen, "temperature", 0.0); /* greedy */
  edgevlm_gen_params_set_int(gen, "n_predict", 32);
  int rc = 0;
  if (edgevlm_session_ask(session, argv[4], gen, print_piece, NULL) != EDGEVLM_OK) {
    fprintf(stderr, "error: %s\n", edgevlm_session_error(session));
    rc = 1;
  }
  printf("\n");
  double tok_s = 0;
  edgevlm_session_get_double(session, "decode_tok_s", &tok_s);
  fprintf(stderr, "edgevlm %s: %.1f tokens/s\n", edgevlm_version(), tok_s);

  edgevlm_gen_params_free(gen);
  edgevlm_session_free(session);
  edgevlm_model_free(model);
  return rc;
}
