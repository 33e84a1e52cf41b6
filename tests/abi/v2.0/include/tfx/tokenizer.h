/* Tokenizer plugins: one instance per tokenizer.json. Results are written to sinks owned by
 * the caller, so nothing allocated by the plugin crosses the boundary. */
#ifndef TFX_TOKENIZER_H
#define TFX_TOKENIZER_H

#include "tfx/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfx_tokenizer_table {
    uint32_t struct_size;
    /* json: the bytes of a tokenizer.json; source names it in error messages. */
    int32_t (*load)(void* self, const char* json, size_t json_size, const char* source, tfx_error* error);
    /* Writes int32 ids to ids; when offsets is non-NULL also writes an int64 pair
     * [begin, end) of byte offsets into text per token. */
    int32_t (*encode)(void* self, const char* text, size_t text_size, int32_t add_special_tokens, tfx_sink ids,
                      const tfx_sink* offsets, tfx_error* error);
    /* Writes UTF-8 text. */
    int32_t (*decode)(void* self, const int32_t* ids, size_t count, int32_t skip_special_tokens, tfx_sink text,
                      tfx_error* error);
    /* Returns -1 when the token is not in the vocabulary. */
    int32_t (*token_to_id)(void* self, const char* token, size_t token_size);
    /* Writes the token's string; TFX_ERR_NOT_FOUND for an id outside the vocabulary. */
    int32_t (*id_to_token)(void* self, int32_t id, tfx_sink token, tfx_error* error);
    /* Vocabulary size including added tokens. */
    int64_t (*vocab_size)(void* self);
} tfx_tokenizer_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_tokenizer_table, load) == 8, "tfx_tokenizer_table layout");

#endif /* TFX_TOKENIZER_H */
