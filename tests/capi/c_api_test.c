/* The C host API from a C11 program: open a model, tokenize, run forward, generate greedily
 * with a per-token callback (and stop from it), and the errors of bad input.
 * usage: c_api_test MODEL_DIR PROMPT_IDS EXPECTED_GREEDY_IDS   (comma-separated ids)
 * Prints one line per check; exits 1 when one fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfx/host_api.h"

static int failures = 0;

static void check(int ok, const char* what, const char* detail) {
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail ? ": " : "", detail ? detail : "");
    if (!ok) ++failures;
}

/* A growing byte buffer behind a tfx_sink. */
typedef struct buffer {
    char* data;
    size_t size;
} buffer;

static void append(void* ctx, const void* data, size_t bytes) {
    buffer* b = (buffer*)ctx;
    b->data = (char*)realloc(b->data, b->size + bytes + 1);
    memcpy(b->data + b->size, data, bytes);
    b->size += bytes;
    b->data[b->size] = '\0';
}

static tfx_sink sink_of(buffer* b) {
    tfx_sink s;
    s.ctx = b;
    s.write = append;
    return s;
}

static size_t parse_ids(const char* text, int32_t* ids, size_t capacity) {
    size_t n = 0;
    while (*text && n < capacity) {
        char* end = NULL;
        ids[n++] = (int32_t)strtol(text, &end, 10);
        text = *end == ',' ? end + 1 : end;
        if (end == text && *text) break;
    }
    return n;
}

typedef struct collected {
    int32_t tokens[512];
    size_t count;
    size_t stop_after; /* 0: never */
} collected;

static int32_t on_token(void* user, size_t sequence, int32_t token) {
    collected* c = (collected*)user;
    (void)sequence;
    if (c->count < 512) c->tokens[c->count++] = token;
    return c->stop_after != 0 && c->count >= c->stop_after;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT_IDS EXPECTED_GREEDY_IDS\n", argv[0]);
        return 2;
    }
    int32_t prompt[512], expected[512];
    const size_t prompt_len = parse_ids(argv[2], prompt, 512);
    const size_t expected_len = parse_ids(argv[3], expected, 512);
    tfx_error error;
    memset(&error, 0, sizeof error);
    error.struct_size = sizeof error;

    check(tfx_api_version() == TFX_HOST_API_VERSION, "tfx_api_version matches the header", NULL);

    tfx_api_model* model = NULL;
    int32_t status = tfx_api_open("/nonexistent/model", NULL, &model, &error);
    check(status == TFX_ERR_NOT_FOUND && strstr(error.message, "/nonexistent/model") != NULL,
          "a missing folder is TFX_ERR_NOT_FOUND naming it", error.message);

    tfx_api_open_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.num_threads = 1;
    status = tfx_api_open(argv[1], &options, &model, &error);
    check(status == TFX_OK && model != NULL, "open the model", status == TFX_OK ? NULL : error.message);
    if (status != TFX_OK) return 1;

    tfx_model_info info = {0};
    info.struct_size = sizeof info;
    check(tfx_api_info(model, &info, &error) == TFX_OK && info.vocab_size > 0, "info", NULL);

    /* Text -> ids -> text, with the model's tokenizer. */
    const tfx_api_tokenizer* tokenizer = tfx_api_model_tokenizer(model);
    check(tokenizer != NULL, "the model holds its tokenizer", NULL);
    buffer ids = {NULL, 0}, text = {NULL, 0};
    const char* story = "Once upon a time";
    status = tfx_api_encode(tokenizer, story, strlen(story), 1, sink_of(&ids), &error);
    const size_t n_ids = ids.size / sizeof(int32_t);
    check(status == TFX_OK && n_ids > 1, "encode", NULL);
    status = tfx_api_decode(tokenizer, (const int32_t*)ids.data, n_ids, 1, sink_of(&text), &error);
    check(status == TFX_OK && text.data && strcmp(text.data, story) == 0, "decode gives the text back", text.data);

    /* The tokenizer alone (no weights): the same ids, and its special tokens. */
    tfx_api_tokenizer* alone = NULL;
    buffer ids_alone = {NULL, 0};
    status = tfx_api_open_tokenizer(argv[1], NULL, &alone, &error);
    if (status == TFX_OK) status = tfx_api_encode(alone, story, strlen(story), 1, sink_of(&ids_alone), &error);
    check(status == TFX_OK && ids_alone.size == ids.size && memcmp(ids_alone.data, ids.data, ids.size) == 0,
          "a tokenizer opened alone encodes alike", status == TFX_OK ? NULL : error.message);
    int32_t eos = -1;
    status = tfx_api_special_token_id(alone, "eos_token", &eos, &error);
    check(status == TFX_OK && eos == 2, "its eos_token id", status == TFX_OK ? NULL : error.message);
    status = tfx_api_special_token_id(alone, "sep_token", &eos, &error);
    check(status == TFX_ERR_NOT_FOUND, "a special token it lacks is TFX_ERR_NOT_FOUND", error.message);
    tfx_api_close_tokenizer(alone);
    free(ids_alone.data);

    /* Forward: the last position's logits pick the first greedy token. */
    buffer logits = {NULL, 0};
    status = tfx_api_forward(model, prompt, prompt_len, 0, sink_of(&logits), &error);
    int ok = status == TFX_OK && logits.size == (size_t)info.output_size * sizeof(float);
    if (ok) {
        const float* l = (const float*)logits.data;
        int32_t best = 0;
        for (int32_t i = 1; i < info.output_size; ++i)
            if (l[i] > l[best]) best = i;
        ok = best == expected[0];
    }
    check(ok, "forward's argmax is the first greedy token", status == TFX_OK ? NULL : error.message);

    /* The same outputs as a DLPack tensor the caller owns: every position, the last row equal. */
    tfx_dlpack_managed_tensor* tensor = NULL;
    status = tfx_api_forward_dlpack(model, prompt, prompt_len, 1, &tensor, &error);
    ok = status == TFX_OK && tensor->dl_tensor.ndim == 2 && tensor->dl_tensor.shape[0] == (int64_t)prompt_len &&
         tensor->dl_tensor.shape[1] == info.output_size && tensor->dl_tensor.dtype.code == 2 &&
         tensor->dl_tensor.dtype.bits == 32 && tensor->dl_tensor.device.device_type == 1 &&
         memcmp((const float*)tensor->dl_tensor.data + (prompt_len - 1) * (size_t)info.output_size, logits.data,
                logits.size) == 0;
    check(ok, "forward_dlpack's last row equals forward's logits", status == TFX_OK ? NULL : error.message);
    if (status == TFX_OK) tensor->deleter(tensor);

    /* Greedy generation, streamed through the callback. */
    char config[128];
    snprintf(config, sizeof config, "{\"max_new_tokens\": %zu, \"ignore_eos\": true}", expected_len);
    collected got;
    memset(&got, 0, sizeof got);
    buffer result = {NULL, 0};
    const int32_t* prompts[1] = {prompt};
    const size_t lengths[1] = {prompt_len};
    status = tfx_api_generate(model, prompts, lengths, 1, config, on_token, &got, sink_of(&result), &error);
    ok = status == TFX_OK && got.count == expected_len &&
         memcmp(got.tokens, expected, expected_len * sizeof(int32_t)) == 0;
    check(ok, "greedy tokens equal the golden, streamed one by one", status == TFX_OK ? result.data : error.message);
    check(result.data && strncmp(result.data, "{\"sequences\":[[", 15) == 0, "the result JSON", result.data);

    /* The callback stops the sequence. */
    collected stopped;
    memset(&stopped, 0, sizeof stopped);
    stopped.stop_after = 3;
    status = tfx_api_generate(model, prompts, lengths, 1, config, on_token, &stopped, sink_of(&result), &error);
    check(status == TFX_OK && stopped.count == 3, "returning nonzero from the callback stops", NULL);

    /* Bad input: errors, never crashes. */
    const int32_t bad[2] = {1, 1 << 30};
    status = tfx_api_forward(model, bad, 2, 0, sink_of(&logits), &error);
    check(status == TFX_ERR_INVALID_ARGUMENT && strstr(error.message, "outside the vocabulary"),
          "an id past the vocabulary", error.message);
    status = tfx_api_generate(model, prompts, lengths, 1, "{\"top_p\": 7, \"do_sample\": true}", NULL, NULL,
                              sink_of(&result), &error);
    check(status == TFX_ERR_INVALID_ARGUMENT && strstr(error.message, "top_p"),
          "a bad generation config names the field", error.message);
    status = tfx_api_generate(model, prompts, lengths, 1, "{not json", NULL, NULL, sink_of(&result), &error);
    check(status == TFX_ERR_INVALID_ARGUMENT, "generation_config_json that is not JSON", error.message);
    status =
        tfx_api_generate(model, prompts, lengths, 1, "{\"max_new_tokenz\": 3}", NULL, NULL, sink_of(&result), &error);
    check(status == TFX_ERR_INVALID_ARGUMENT && strstr(error.message, "unknown field 'max_new_tokenz'"),
          "a misspelt generation field is refused, not ignored", error.message);
    status = tfx_api_apply_chat_template(tokenizer, "[{\"role\": \"user\", \"content\": \"hi\"}]", 1, sink_of(&text),
                                         &error);
    check(status != TFX_OK && error.message[0] != '\0', "a model without a chat template says so", error.message);

    tfx_api_close(model);
    free(ids.data);
    free(text.data);
    free(logits.data);
    free(result.data);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
