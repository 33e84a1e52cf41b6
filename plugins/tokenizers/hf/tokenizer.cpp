#include "tokenizer.h"

#include <fstream>
#include <sstream>

#include "encoding_ops.h"
#include "tokenizer_core.h"
#include "utf8.h"

namespace tfx::tok {
namespace {

void require_utf8(std::string_view text) {
    if (const auto bad = utf8::find_invalid(text))
        throw Error("input is not valid UTF-8 (byte offset " + std::to_string(*bad) + ")");
}

}  // namespace

// --- Core ----------------------------------------------------------------------------

Encoding Tokenizer::Core::encode_sequence(std::string_view text, uint32_t type_id, bool encode_special_tokens) const {
    require_utf8(text);
    PreTokenizedString pts = added.extract_and_normalize(text, normalizer.get(), encode_special_tokens);
    if (pre_tokenizer) pre_tokenizer->pre_tokenize(pts);

    Encoding e;
    thread_local std::vector<Token> tokens;
    for (Split& split : pts.splits()) {
        // Each split is released once its tokens are out, so the pieces of a long input and
        // the growing encoding are not both held in full.
        const NormalizedString ns = std::move(split.normalized);
        split.normalized = NormalizedString();
        if (split.tokens) {
            tokens = std::move(*split.tokens);
        } else {
            tokens.clear();
            model->tokenize(ns.get(), tokens);
        }
        const size_t shift = ns.original_shift();
        for (Token& t : tokens) {
            Offsets o{t.begin, t.end};
            if (const auto orig = ns.to_original(t.begin, t.end)) o = {shift + orig->first, shift + orig->second};
            e.ids.push_back(t.id);
            e.tokens.push_back(std::move(t.value));
            e.offsets.push_back(o);
        }
    }
    e.type_ids.assign(e.ids.size(), type_id);
    e.attention_mask.assign(e.ids.size(), 1);
    e.special_tokens_mask.assign(e.ids.size(), 0);
    return e;
}

std::optional<std::string> Tokenizer::Core::id_to_token(int32_t id) const {
    if (const AddedToken* t = added.token(id)) return t->content;
    if (const auto t = model->id_to_token(id)) return std::string(*t);
    return std::nullopt;
}

std::string Tokenizer::Core::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids) {
        auto token = id_to_token(id);
        if (!token || (skip_special_tokens && added.is_special(*token))) continue;
        tokens.push_back(std::move(*token));
    }
    if (!decoder) {
        std::string joined;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (i) joined += ' ';
            joined += tokens[i];
        }
        return joined;
    }
    decoder->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
}

// --- Tokenizer -----------------------------------------------------------------------

Tokenizer::Tokenizer(std::shared_ptr<const Core> core)
    : core_(std::move(core)), truncation_(core_->truncation), padding_(core_->padding) {}

Tokenizer Tokenizer::from_json_text(std::string_view json) {
    return Tokenizer(load_tokenizer_core(json));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw Error("cannot open tokenizer file " + path.string());
    // One read into a buffer of the file's size (a stringstream would grow and copy it).
    const std::streamoff size = in.tellg();
    std::string text;
    if (size < 0) {  // not seekable
        in.clear();
        std::ostringstream buffer;
        buffer << in.rdbuf();
        text = std::move(buffer).str();
    } else if (size > 0) {
        text.resize(static_cast<size_t>(size));
        in.seekg(0);
        in.read(text.data(), size);
        if (in.gcount() != size) throw Error("cannot read tokenizer file " + path.string());
    }
    if (in.bad()) throw Error("cannot read tokenizer file " + path.string());
    return from_json_text(text);
}

void Tokenizer::set_truncation(std::optional<TruncationParams> params) {
    if (params && params->max_length > 0 && params->stride >= params->max_length)
        throw Error("truncation stride must be smaller than max_length");
    truncation_ = std::move(params);
}

Encoding Tokenizer::encode_impl(std::string_view first, const std::string_view* second, bool add_special_tokens) const {
    Encoding a = core_->encode_sequence(first, 0, encode_special_tokens_);
    std::optional<Encoding> b;
    if (second) b = core_->encode_sequence(*second, 1, encode_special_tokens_);
    if (truncation_) {
        TruncationParams params = *truncation_;
        const size_t added = add_special_tokens ? num_special_tokens_to_add(second != nullptr) : 0;
        params.max_length = params.max_length > added ? params.max_length - added : 0;
        truncate_pair(a, b ? &*b : nullptr, params);
    }
    return post_process(core_->post_processor.get(), std::move(a), b ? &*b : nullptr, add_special_tokens);
}

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
    Encoding e = encode_impl(text, nullptr, add_special_tokens);
    if (padding_) {
        std::vector<Encoding> one{std::move(e)};
        pad_batch(one, *padding_);
        e = std::move(one.front());
    }
    return e;
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second, bool add_special_tokens) const {
    Encoding e = encode_impl(first, &second, add_special_tokens);
    if (padding_) {
        std::vector<Encoding> one{std::move(e)};
        pad_batch(one, *padding_);
        e = std::move(one.front());
    }
    return e;
}

std::vector<Encoding> Tokenizer::encode_batch(std::span<const std::string_view> texts, bool add_special_tokens) const {
    std::vector<Encoding> out;
    out.reserve(texts.size());
    for (const auto text : texts) out.push_back(encode_impl(text, nullptr, add_special_tokens));
    if (padding_) pad_batch(out, *padding_);
    return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    return core_->decode(ids, skip_special_tokens);
}

std::vector<std::string> Tokenizer::decode_batch(std::span<const std::vector<int32_t>> batch,
                                                 bool skip_special_tokens) const {
    std::vector<std::string> out;
    out.reserve(batch.size());
    for (const auto& ids : batch) out.push_back(core_->decode(ids, skip_special_tokens));
    return out;
}

DecodeStream Tokenizer::decode_stream(bool skip_special_tokens) const {
    return DecodeStream(core_, skip_special_tokens);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    if (auto id = core_->added.token_to_id(token)) return id;
    return core_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
    return core_->id_to_token(id);
}

size_t Tokenizer::vocab_size(bool with_added_tokens) const {
    return with_added_tokens ? core_->vocab_size_with_added : core_->model->vocab_size();
}

bool Tokenizer::is_special_token(int32_t id) const {
    return core_->added.is_special_id(id);
}

size_t Tokenizer::num_special_tokens_to_add(bool is_pair) const {
    return core_->post_processor ? core_->post_processor->added_tokens(is_pair) : 0;
}

// --- DecodeStream --------------------------------------------------------------------
//
// Keeps a window of ids: decoding the window and removing the decode of the ids already
// emitted yields the new text, so context-dependent decoders (leading-space stripping,
// byte fallback, multi-token UTF-8 sequences) see the neighbours they need.

std::string DecodeStream::decode_window() const {
    return core_->decode(ids_, skip_special_tokens_);
}

std::string DecodeStream::step(int32_t id) {
    ids_.push_back(id);
    std::string text = decode_window();
    if (text.size() <= prefix_.size() || text.ends_with("\xEF\xBF\xBD")) return {};  // incomplete character held back
    if (!text.starts_with(prefix_)) throw Error("decode stream: decoded text does not extend the previous text");
    std::string piece = text.substr(prefix_.size());
    const size_t next_prefix_index = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_index_));
    prefix_ = decode_window();
    prefix_index_ = next_prefix_index;
    return piece;
}

std::string DecodeStream::flush() {
    std::string text = decode_window();
    std::string piece;
    if (text.size() > prefix_.size() && text.starts_with(prefix_)) piece = text.substr(prefix_.size());
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return piece;
}

}  // namespace tfx::tok
