// The tokenizer.json plugin: Hugging Face's whole tokenizer pipeline (tfx::tok engine)
// behind the tokenizer ABI. Results go to the caller's sinks; engine exceptions become
// status codes with the engine's message.
#include <optional>
#include <string>

#include "tfx/sdk/plugin.hpp"
#include "tokenizer.h"

namespace {

using tfx::sdk::Error;

class HfTokenizer {
  public:
    explicit HfTokenizer(const tfx_host_services*) {}

    void load(const char* json, size_t size, const char* source) {
        try {
            tokenizer_ = tfx::tok::Tokenizer::from_json_text(std::string_view(json, size));
        } catch (const std::exception& e) {
            throw Error(TFX_ERR_FORMAT, std::string(source != nullptr ? source : "tokenizer.json") + ": " + e.what());
        }
    }

    void encode(const char* text, size_t size, int32_t add_special_tokens, tfx_sink ids, const tfx_sink* offsets) {
        const tfx::tok::Encoding e = loaded().encode(std::string_view(text, size), add_special_tokens != 0);
        ids.write(ids.ctx, e.ids.data(), e.ids.size() * sizeof(int32_t));
        if (offsets != nullptr) {
            for (const auto& o : e.offsets) {
                const int64_t span[2] = {static_cast<int64_t>(o.begin), static_cast<int64_t>(o.end)};
                offsets->write(offsets->ctx, span, sizeof span);
            }
        }
    }

    void decode(const int32_t* ids, size_t count, int32_t skip_special_tokens, tfx_sink text) {
        const std::string s = loaded().decode({ids, count}, skip_special_tokens != 0);
        text.write(text.ctx, s.data(), s.size());
    }

    int32_t token_to_id(const char* token, size_t size) {
        if (!tokenizer_) return -1;
        return tokenizer_->token_to_id(std::string_view(token, size)).value_or(-1);
    }

    void id_to_token(int32_t id, tfx_sink token) {
        auto t = loaded().id_to_token(id);
        if (!t) throw Error(TFX_ERR_NOT_FOUND, "id " + std::to_string(id) + " is not in the vocabulary");
        token.write(token.ctx, t->data(), t->size());
    }

    int64_t vocab_size() const { return tokenizer_ ? static_cast<int64_t>(tokenizer_->vocab_size(true)) : 0; }

  private:
    const tfx::tok::Tokenizer& loaded() const {
        if (!tokenizer_) throw Error(TFX_ERR_INVALID_ARGUMENT, "no tokenizer.json loaded");
        return *tokenizer_;
    }

    std::optional<tfx::tok::Tokenizer> tokenizer_;
};

const tfx_tokenizer_table kTable = {
    sizeof(tfx_tokenizer_table),
    tfx::sdk::method<&HfTokenizer::load>,
    tfx::sdk::method<&HfTokenizer::encode>,
    tfx::sdk::method<&HfTokenizer::decode>,
    [](void* self, const char* token, size_t size) {
        return static_cast<HfTokenizer*>(self)->token_to_id(token, size);
    },
    tfx::sdk::method<&HfTokenizer::id_to_token>,
    [](void* self) { return static_cast<const HfTokenizer*>(self)->vocab_size(); },
};

}  // namespace

TFX_PLUGIN_EXPORT(HfTokenizer, kTable)
