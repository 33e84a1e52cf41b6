/* Generate text from C with tfx's host API: usage: c_host MODEL_DIR PROMPT [MAX_NEW_TOKENS]
 * Prints the prompt, then the new text as each token arrives (greedy decoding). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfx/host_api.h"

typedef struct bytes {
    char* data;
    size_t size;
} bytes;

static void append(void* ctx, const void* data, size_t size) {
    bytes* b = (bytes*)ctx;
    b->data = (char*)realloc(b->data, b->size + size + 1);
    memcpy(b->data + b->size, data, size);
    b->size += size;
    b->data[b->size] = '\0';
}

typedef struct stream {
    tfx_api_model* model;
    int32_t tokens[4096];
    size_t count;
    size_t printed; /* bytes of the decoded text already printed */
} stream;

/* Decodes everything so far and prints what is new (pieces join with the right spaces). */
static int32_t on_token(void* user, size_t sequence, int32_t token) {
    stream* s = (stream*)user;
    bytes text = {NULL, 0};
    tfx_error error = {sizeof error, 0, {0}};
    (void)sequence;
    if (s->count < 4096) s->tokens[s->count++] = token;
    if (tfx_api_decode(tfx_api_model_tokenizer(s->model), s->tokens, s->count, 1, (tfx_sink){&text, append}, &error) ==
            TFX_OK &&
        text.size > s->printed) {
        fputs(text.data + s->printed, stdout);
        fflush(stdout);
        s->printed = text.size;
    }
    free(text.data);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT [MAX_NEW_TOKENS]\n", argv[0]);
        return 2;
    }
    tfx_error error = {sizeof error, 0, {0}};
    tfx_api_model* model = NULL;
    if (tfx_api_open(argv[1], NULL, &model, &error) != TFX_OK) {
        fprintf(stderr, "error: %s\n", error.message);
        return 1;
    }
    bytes ids = {NULL, 0}, result = {NULL, 0};
    char config[96];
    snprintf(config, sizeof config, "{\"max_new_tokens\": %d, \"do_sample\": false}", argc > 3 ? atoi(argv[3]) : 32);
    stream s = {model, {0}, 0, 0};
    int status =
        tfx_api_encode(tfx_api_model_tokenizer(model), argv[2], strlen(argv[2]), 1, (tfx_sink){&ids, append}, &error);
    if (status == TFX_OK) {
        const int32_t* prompt = (const int32_t*)ids.data;
        const size_t length = ids.size / sizeof(int32_t);
        fputs(argv[2], stdout);
        status =
            tfx_api_generate(model, &prompt, &length, 1, config, on_token, &s, (tfx_sink){&result, append}, &error);
        putchar('\n');
    }
    if (status != TFX_OK) fprintf(stderr, "error: %s\n", error.message);
    free(ids.data);
    free(result.data);
    tfx_api_close(model);
    return status == TFX_OK ? 0 : 1;
}
