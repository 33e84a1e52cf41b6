#include "registry/auto_tokenizer.h"

#include <cstring>
#include <optional>

#include "core/json_file.h"
#include "core/paths.h"
#include "core/plugin_catalogue.h"
#include "core/plugin_guard.h"
#include "core/plugin_instance.h"
#include "jinja/chat_template.h"
#include "registry/gguf_tokenizer.h"
#include "tfx/sdk/error.hpp"
#include "tfx/tokenizer.h"

namespace tfx {
namespace fs = std::filesystem;

namespace {

tfx_sink string_sink(std::string& out) {
    return {&out, [](void* ctx, const void* data, size_t bytes) {
                static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), bytes);
            }};
}

// Classes whose fast tokenizer replaces tokenizer.json's post-processor with
// [bos] $A [eos] according to add_bos_token / add_eos_token.
bool rebuilds_post_processor(const std::string& tokenizer_class) {
    for (const char* name : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                             "GemmaTokenizer", "GemmaTokenizerFast"}) {
        if (tokenizer_class == name) return true;
    }
    return false;
}

// transformers' clean_up_tokenization: drops the space before punctuation and contractions.
std::string clean_up_tokenization(std::string s) {
    for (auto [from, to] : {std::pair{" .", "."},
                            {" ?", "?"},
                            {" !", "!"},
                            {" ,", ","},
                            {" ' ", "'"},
                            {" n't", "n't"},
                            {" 'm", "'m"},
                            {" 's", "'s"},
                            {" 've", "'ve"},
                            {" 're", "'re"}}) {
        for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos;) {
            s.replace(pos, std::string_view(from).size(), to);
            pos += std::string_view(to).size();
        }
    }
    return s;
}

// What the plugin choice needs of tokenizer.json, read in one SAX pass that builds no
// document: a 262k-entry vocabulary as a DOM costs ~100 MB and a second of load time, and the
// plugin parses the file its own way anyway.
class ModelFields : public nlohmann::json::json_sax_t {
  public:
    bool top_level_is_object = false;
    const char* top_level_kind = "nothing";
    bool model_is_object = false;
    std::optional<std::string> type;
    bool has_merges = false, vocab_is_array = false, has_max_input_chars_per_word = false;
    std::string error;

    // model.type, or for files written before it was recorded, the type its fields imply.
    std::string model_type() const {
        if (!model_is_object) return "BPE";
        if (type) return *type;
        if (has_merges) return "BPE";
        if (vocab_is_array) return "Unigram";
        return has_max_input_chars_per_word ? "WordPiece" : "WordLevel";
    }

    bool null() override { return value("null"); }
    bool boolean(bool) override { return value("a boolean"); }
    bool number_integer(number_integer_t) override { return value("a number"); }
    bool number_unsigned(number_unsigned_t) override { return value("a number"); }
    bool number_float(number_float_t, const string_t&) override { return value("a number"); }
    bool string(string_t& text) override {
        if (in_model_field("type")) type = text;
        return value("a string");
    }
    bool binary(binary_t&) override { return value("binary"); }
    bool start_object(std::size_t) override {
        if (depth_ == 0) top_level_is_object = true;
        if (depth_ == 1 && key_ == "model") model_is_object = true;
        value("an object");
        open(true);
        return true;
    }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override {
        if (in_model_field("vocab")) vocab_is_array = true;
        value("an array");
        open(false);
        return true;
    }
    bool end_array() override { return close(); }
    bool key(string_t& name) override {
        if (depth_ == 1) key_ = name;
        if (depth_ == 2 && in_model_) {
            has_merges |= name == "merges";
            has_max_input_chars_per_word |= name == "max_input_chars_per_word";
            model_key_ = name;
        }
        return true;
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
        error = "not valid JSON at byte " + std::to_string(position) + " (" + e.what() + ")";
        return false;
    }

  private:
    int depth_ = 0;
    bool in_model_ = false;  // inside the top-level "model" object
    std::string key_, model_key_;

    bool in_model_field(const char* name) const { return depth_ == 2 && in_model_ && model_key_ == name; }
    bool value(const char* kind) {
        if (depth_ == 0) top_level_kind = kind;
        return true;
    }
    void open(bool object) {
        if (depth_ == 1 && key_ == "model" && object) in_model_ = true;
        ++depth_;
    }
    bool close() {
        --depth_;
        if (depth_ == 1) in_model_ = false;
        return true;
    }
};

}  // namespace

struct Tokenizer::Impl {
    tfx_host_services services{};              // outlives the instance
    std::unique_ptr<PluginInstance> instance;  // create() and destroy() marked for the crash reporters
    const tfx_tokenizer_table* table = nullptr;
    void* self = nullptr;

    // Marks a call into the plugin for the crash reporters.
    plugin_guard::CallScope call(const char* phase) const { return {instance->name, instance->plugin.library, phase}; }
};

std::unique_ptr<Tokenizer> Tokenizer::open(const fs::path& dir, const std::vector<std::string>& plugin_paths,
                                           bool raw) {
    if (fs::is_regular_file(dir) && gguf::is_gguf(dir)) return open_gguf(gguf::File(dir), plugin_paths);
    const fs::path file = dir / "tokenizer.json";
    if (!fs::exists(file)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         dir.string() + ": no tokenizer.json (only tokenizer.json-based tokenizers are supported)");
    }
    std::unique_ptr<Tokenizer> tokenizer = load(read_text_file(file), file.string(), plugin_paths);
    if (!raw) {
        if (auto map = load_optional_json_file(dir / "special_tokens_map.json")) tokenizer->settings_ = map->json();
        if (auto config = load_optional_json_file(dir / "tokenizer_config.json")) {
            for (const auto& [key, value] : config->json().items()) tokenizer->settings_[key] = value;
            const std::string cls = config->get_or<std::string>("tokenizer_class", "");
            if (rebuilds_post_processor(cls)) {
                tokenizer->add_bos_ = config->get_or<bool>("add_bos_token", true);
                tokenizer->add_eos_ = config->get_or<bool>("add_eos_token", false);
            }
            tokenizer->clean_up_spaces_ = config->get_or<bool>("clean_up_tokenization_spaces", false);
        }
    }
    return tokenizer;
}

std::unique_ptr<Tokenizer> Tokenizer::open_gguf(const gguf::File& file, const std::vector<std::string>& plugin_paths) {
    GgufTokenizer converted = tokenizer_of(file);
    std::unique_ptr<Tokenizer> tokenizer =
        load(converted.tokenizer_json, file.path().string() + " (tokenizer metadata)", plugin_paths);
    tokenizer->settings_ = std::move(converted.settings);
    tokenizer->clean_up_spaces_ = converted.clean_up_spaces;
    return tokenizer;
}

std::unique_ptr<Tokenizer> Tokenizer::for_model(const ModelSession& session,
                                                const std::vector<std::string>& plugin_paths) {
    if (const auto& gguf = session.gguf_file()) return open_gguf(*gguf, plugin_paths);
    return open(session.model_dir(), plugin_paths);
}

bool Tokenizer::model_has_one(const ModelSession& session) {
    if (const auto& gguf = session.gguf_file()) return gguf->meta("tokenizer.ggml.model") != nullptr;
    return fs::exists(session.model_dir() / "tokenizer.json");
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& json, const std::string& source,
                                           const std::vector<std::string>& plugin_paths) {
    // The model type decides the plugin; read only that here, the plugin validates the rest.
    ModelFields fields;
    if (!nlohmann::json::sax_parse(json, &fields)) throw sdk::Error(TFX_ERR_FORMAT, source + ": " + fields.error);
    if (!fields.top_level_is_object) {
        throw sdk::Error(TFX_ERR_FORMAT,
                         source + ": expected a JSON object at the top level, got " + fields.top_level_kind);
    }
    const std::string model_type = fields.model_type();

    std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
    tokenizer->impl_ = std::make_unique<Impl>();
    Impl& impl = *tokenizer->impl_;
    PluginCatalogue catalogue(paths::plugin_search_path(plugin_paths));
    auto candidates = catalogue.providing("tokenizer", "tokenizer_models", model_type);
    if (candidates.empty()) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, source + ": no installed tokenizer plugin provides model type '" +
                                                model_type + "' (see tfx-plugins list)");
    }
    impl.services.struct_size = sizeof(impl.services);
    impl.services.abi_major = TFX_ABI_MAJOR;
    impl.services.abi_minor = TFX_ABI_MINOR;
    impl.instance = instantiate(*candidates.front(), &impl.services, TFX_KIND_TOKENIZER);
    impl.table = impl.instance->table<tfx_tokenizer_table>();
    impl.self = impl.instance->self;
    tfx_error error = sdk::empty_error();
    {
        auto scope = impl.call("load()");
        sdk::check(impl.table->load(impl.self, json.data(), json.size(), source.c_str(), &error), error);
    }
    return tokenizer;
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
    return encode_tokens(text, add_special_tokens, false).ids;
}

Tokenizer::Encoding Tokenizer::encode_with_offsets(std::string_view text, bool add_special_tokens) const {
    return encode_tokens(text, add_special_tokens, true);
}

Tokenizer::Encoding Tokenizer::encode_tokens(std::string_view text, bool add_special_tokens, bool with_offsets) const {
    std::string bytes, offset_bytes;
    tfx_error error = sdk::empty_error();
    const bool rebuilt = add_special_tokens && (add_bos_ || add_eos_);
    auto scope = impl_->call("encode()");
    const tfx_sink offsets_sink = string_sink(offset_bytes);
    sdk::check(impl_->table->encode(impl_->self, text.data(), text.size(), add_special_tokens && !rebuilt ? 1 : 0,
                                    string_sink(bytes), with_offsets ? &offsets_sink : nullptr, &error),
               error);
    Encoding out;
    out.ids.resize(bytes.size() / sizeof(int32_t));
    std::memcpy(out.ids.data(), bytes.data(), out.ids.size() * sizeof(int32_t));
    if (with_offsets) {
        std::vector<int64_t> pairs(offset_bytes.size() / sizeof(int64_t));
        std::memcpy(pairs.data(), offset_bytes.data(), pairs.size() * sizeof(int64_t));
        if (pairs.size() != 2 * out.ids.size()) {
            throw sdk::Error(TFX_ERR_INTERNAL, "tokenizer plugin: " + std::to_string(pairs.size() / 2) +
                                                   " offsets for " + std::to_string(out.ids.size()) + " tokens");
        }
        for (size_t i = 0; i < out.ids.size(); ++i) out.offsets.emplace_back(pairs[2 * i], pairs[2 * i + 1]);
    }
    if (rebuilt) {
        if (add_bos_.value_or(false)) {
            auto bos = special_id("bos_token");
            if (!bos)
                throw sdk::Error(TFX_ERR_FORMAT,
                                 "tokenizer_config.json: add_bos_token is set but bos_token is not in the vocabulary");
            out.ids.insert(out.ids.begin(), *bos);
            if (with_offsets) out.offsets.insert(out.offsets.begin(), {0, 0});
        }
        if (add_eos_.value_or(false)) {
            auto eos = special_id("eos_token");
            if (!eos)
                throw sdk::Error(TFX_ERR_FORMAT,
                                 "tokenizer_config.json: add_eos_token is set but eos_token is not in the vocabulary");
            out.ids.push_back(*eos);
            if (with_offsets) out.offsets.emplace_back(0, 0);
        }
    }
    return out;
}

bool Tokenizer::is_special(int32_t id) const {
    const std::span<const int32_t> one(&id, 1);
    return decode(one, true).empty() && !decode(one, false).empty();
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens,
                              std::optional<bool> clean_up_spaces) const {
    std::string text;
    tfx_error error = sdk::empty_error();
    auto scope = impl_->call("decode()");
    sdk::check(impl_->table->decode(impl_->self, ids.data(), ids.size(), skip_special_tokens ? 1 : 0, string_sink(text),
                                    &error),
               error);
    return clean_up_spaces.value_or(clean_up_spaces_) ? clean_up_tokenization(std::move(text)) : text;
}

std::string Tokenizer::piece_after_text(int32_t id) const {
    std::vector<int32_t> ids = encode("abcdef", false);
    const size_t before = decode(ids).size();
    ids.push_back(id);
    const std::string text = decode(ids);
    return text.size() > before ? text.substr(before) : std::string();
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
    std::string token;
    tfx_error error = sdk::empty_error();
    auto scope = impl_->call("id_to_token()");
    if (impl_->table->id_to_token(impl_->self, id, string_sink(token), &error) != TFX_OK) return std::nullopt;
    return token;
}

namespace {

// GPT-2's byte-level alphabet backwards: the byte a code point stands for, or -1.
int byte_level_byte(uint32_t cp) {
    auto printable = [](uint32_t b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; };
    if (cp < 256 && printable(cp)) return static_cast<int>(cp);
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
        if (printable(b)) continue;
        if (cp == 256 + n) return static_cast<int>(b);
        ++n;
    }
    return -1;
}

// A byte-level token string back to its bytes; nullopt if it is not one.
std::optional<std::string> byte_level_bytes(const std::string& token) {
    std::string out;
    for (size_t i = 0; i < token.size();) {
        const auto c = static_cast<unsigned char>(token[i]);
        const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        if (i + static_cast<size_t>(len) > token.size()) return std::nullopt;
        uint32_t cp = len == 1 ? c : c & (0x3F >> (len - 1));
        for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(token[i + k]) & 0x3F);
        const int b = byte_level_byte(cp);
        if (b < 0) return std::nullopt;
        out += static_cast<char>(b);
        i += static_cast<size_t>(len);
    }
    return out;
}

}  // namespace

std::vector<std::optional<std::string>> Tokenizer::token_bytes() const {
    const auto n = static_cast<int32_t>(vocab_size());
    std::vector<std::optional<std::string>> table(static_cast<size_t>(n));
    std::vector<int32_t> ids = encode("abcdef", false);
    const size_t before = decode(ids, false, false).size();
    const std::string replacement = "\xEF\xBF\xBD";
    for (int32_t id = 0; id < n; ++id) {
        ids.push_back(id);
        const std::string text = decode(ids, false, false);
        const bool special = decode(ids, true, false).size() <= before;  // skip_special_tokens drops it
        ids.pop_back();
        if (special || text.size() <= before) continue;
        const std::optional<std::string> token = id_to_token(id);
        if (token && token->size() == 6 && token->rfind("<0x", 0) == 0 && token->back() == '>') {
            table[static_cast<size_t>(id)] =
                std::string(1, static_cast<char>(std::stoi(token->substr(3, 2), nullptr, 16)));
            continue;
        }
        std::string piece = text.substr(before);
        if (piece.find(replacement) != std::string::npos && token && token->find(replacement) == std::string::npos) {
            table[static_cast<size_t>(id)] = byte_level_bytes(*token);  // part of a character
            continue;
        }
        table[static_cast<size_t>(id)] = std::move(piece);
    }
    return table;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    const int32_t id = impl_->table->token_to_id(impl_->self, token.data(), token.size());
    return id < 0 ? std::nullopt : std::optional<int32_t>(id);
}

int64_t Tokenizer::vocab_size() const {
    return impl_->table->vocab_size(impl_->self);
}

std::optional<std::string> Tokenizer::special_token(const std::string& key) const {
    auto it = settings_.find(key);
    if (it == settings_.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && it->at("content").is_string())
        return it->at("content").get<std::string>();
    return std::nullopt;
}

std::optional<int32_t> Tokenizer::special_id(const std::string& key) const {
    auto token = special_token(key);
    return token ? token_to_id(*token) : std::nullopt;
}

std::string Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages, const ChatOptions& options) const {
    if (!settings_.contains("chat_template")) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         "tokenizer_config.json has no chat_template; this model has no chat format");
    }
    jinja::ChatRequest request;
    request.messages = messages;
    request.tools = options.tools;
    request.add_generation_prompt = options.add_generation_prompt;
    request.continue_final_message = options.continue_final_message;
    request.extra = options.extra;
    request.template_name = options.template_name;
    try {
        return jinja::apply_chat_template(nlohmann::ordered_json::parse(settings_.dump()), request);
    } catch (const jinja::Error& e) {
        throw sdk::Error(TFX_ERR_FORMAT, std::string("chat template: ") + e.what());
    }
}

std::vector<int32_t> Tokenizer::encode_chat(const nlohmann::ordered_json& messages, const ChatOptions& options) const {
    return encode(apply_chat_template(messages, options), /*add_special_tokens=*/false);
}

std::string TextStreamer::window_excess(bool final) const {
    const std::span<const int32_t> ids(ids_);
    const std::string printed = tokenizer_.decode(ids.subspan(prefix_, read_ - prefix_), skip_special_);
    const std::string text = tokenizer_.decode(ids.subspan(prefix_), skip_special_);
    // A trailing U+FFFD means the last token ends inside a UTF-8 character: wait for more.
    if (!final && text.ends_with("\xEF\xBF\xBD")) return "";
    // A decoder that rewrites text already printed (clean-up of spaces before punctuation)
    // cannot be streamed exactly; what follows the printed length is the best there is.
    return text.size() > printed.size() ? text.substr(printed.size()) : "";
}

std::string TextStreamer::put(int32_t id) {
    ids_.push_back(id);
    std::string piece = window_excess(false);
    if (!piece.empty()) {
        prefix_ = read_;
        read_ = ids_.size();
    }
    return piece;
}

std::string TextStreamer::end() {
    std::string piece = window_excess(true);
    prefix_ = read_ = ids_.size();
    return piece;
}

}  // namespace tfx
