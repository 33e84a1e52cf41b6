#include "json_document.h"

#include <optional>

#include "error.h"

namespace tfx::tok {

namespace {

using json = nlohmann::json;

class Handler final : public nlohmann::json_sax<json> {
  public:
    explicit Handler(TokenizerDocument& doc) : doc_(doc) {}
    const std::string& error() const { return error_; }

    bool null() override { return value(nullptr, "null"); }
    bool boolean(bool v) override { return value(v, "a boolean"); }
    bool number_integer(number_integer_t v) override { return number(static_cast<double>(v), v, v); }
    bool number_unsigned(number_unsigned_t v) override {
        return number(
            static_cast<double>(v),
            v <= static_cast<uint64_t>(INT64_MAX) ? std::optional<int64_t>(static_cast<int64_t>(v)) : std::nullopt, v);
    }
    bool number_float(number_float_t v, const string_t&) override { return number(v, std::nullopt, v); }
    bool binary(binary_t&) override { return fail("tokenizer.json: unexpected binary value"); }

    bool string(string_t& s) override {
        switch (mode_) {
            case Mode::VocabMap:
                return fail(vocab_key_path() + ": expected an integer id, got a string");
            case Mode::VocabList:
                if (depth_ == 2 && entry_items_ == 0) {
                    piece_ = std::move(s);
                    ++entry_items_;
                    return true;
                }
                return fail(list_entry_path() + ": expected [piece, score]");
            case Mode::Merges:
                if (depth_ == 1) {
                    if (s.starts_with("#version")) return true;
                    const size_t space = s.find(' ');
                    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                        return fail(merge_error());
                    const std::string_view merge(s);
                    if (!doc_.merges.add(merge.substr(0, space), merge.substr(space + 1)))
                        return fail(merges_too_large());
                    ++entry_index_;
                    return true;
                }
                if (depth_ == 2 && entry_items_ < 2) {
                    (entry_items_ == 0 ? pair_.first : pair_.second).assign(s);  // keeps both buffers
                    ++entry_items_;
                    return true;
                }
                return fail(merge_error());
            case Mode::None:
                return dom_value(json(std::move(s)));
        }
        return true;
    }

    bool start_object(std::size_t) override {
        if (mode_ == Mode::None) {
            if (at_model_field("vocab")) {
                mode_ = Mode::VocabMap;
                doc_.vocab_kind = TokenizerDocument::VocabKind::Map;
                depth_ = 1;
                return true;
            }
            if (at_model_field("merges")) return fail(merge_error());
            json* j = dom_insert(json(json::value_t::object));
            stack_.push_back(j);
            keys_.emplace_back();
            return true;
        }
        if (mode_ == Mode::VocabMap) return fail(vocab_key_path() + ": expected an integer id, got an object");
        return fail(mode_ == Mode::Merges ? merge_error() : list_entry_path() + ": expected [piece, score]");
    }

    bool key(string_t& k) override {
        if (mode_ == Mode::VocabMap) {
            vocab_key_.assign(k);  // a copy: the lexer keeps its buffer, no allocation per token
            return true;
        }
        keys_.back() = k;
        current_slot_ = &(*stack_.back())[k];
        return true;
    }

    bool end_object() override {
        if (mode_ == Mode::VocabMap) {
            mode_ = Mode::None;
            return true;
        }
        stack_.pop_back();
        keys_.pop_back();
        return true;
    }

    bool start_array(std::size_t) override {
        switch (mode_) {
            case Mode::None:
                if (at_model_field("vocab")) {
                    mode_ = Mode::VocabList;
                    doc_.vocab_kind = TokenizerDocument::VocabKind::List;
                    depth_ = 1;
                    entry_index_ = 0;
                    return true;
                }
                if (at_model_field("merges")) {
                    mode_ = Mode::Merges;
                    doc_.has_merges = true;
                    depth_ = 1;
                    entry_index_ = 0;
                    return true;
                }
                stack_.push_back(dom_insert(json(json::value_t::array)));
                keys_.emplace_back();
                return true;
            case Mode::VocabMap:
                return fail(vocab_key_path() + ": expected an integer id, got an array");
            case Mode::VocabList:
            case Mode::Merges:
                if (depth_ != 1)
                    return fail(mode_ == Mode::Merges ? merge_error()
                                                      : list_entry_path() + ": expected [piece, score]");
                depth_ = 2;
                entry_items_ = 0;
                return true;
        }
        return true;
    }

    bool end_array() override {
        switch (mode_) {
            case Mode::None:
                stack_.pop_back();
                keys_.pop_back();
                return true;
            case Mode::VocabMap:
                return true;
            case Mode::VocabList:
                if (depth_ == 1) {
                    mode_ = Mode::None;
                    return true;
                }
                if (entry_items_ != 2) return fail(list_entry_path() + ": expected [piece, score]");
                doc_.vocab_list.emplace_back(std::move(piece_), score_);
                ++entry_index_;
                depth_ = 1;
                return true;
            case Mode::Merges:
                if (depth_ == 1) {
                    mode_ = Mode::None;
                    return true;
                }
                if (entry_items_ != 2) return fail(merge_error());
                if (!doc_.merges.add(pair_.first, pair_.second)) return fail(merges_too_large());
                ++entry_index_;
                depth_ = 1;
                return true;
        }
        return true;
    }

    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
        if (error_.empty())
            error_ = "tokenizer.json: invalid JSON at byte " + std::to_string(position) + ": " + e.what();
        return false;
    }

  private:
    enum class Mode { None, VocabMap, VocabList, Merges };

    bool fail(std::string message) {
        error_ = std::move(message);
        return false;
    }

    // The value about to be read is root.model.<field>.
    bool at_model_field(const char* field) const {
        return stack_.size() == 2 && keys_[0] == "model" && stack_[1]->is_object() && keys_[1] == field;
    }

    json* dom_insert(json v) {
        if (stack_.empty()) {
            doc_.root = std::move(v);
            return &doc_.root;
        }
        if (stack_.back()->is_array()) {
            stack_.back()->push_back(std::move(v));
            return &stack_.back()->back();
        }
        *current_slot_ = std::move(v);
        return current_slot_;
    }

    bool dom_value(json v) {
        dom_insert(std::move(v));
        return true;
    }

    template <class V>
    bool value(V v, const char* what) {
        switch (mode_) {
            case Mode::None:
                if (at_model_field("merges")) return fail(merge_error());
                return dom_value(json(v));
            case Mode::VocabMap:
                return fail(vocab_key_path() + ": expected an integer id, got " + what);
            case Mode::VocabList:
                return fail(list_entry_path() + ": expected [piece, score]");
            case Mode::Merges:
                return fail(merge_error());
        }
        return true;
    }

    bool number(double as_double, std::optional<int64_t> as_int, json dom) {
        switch (mode_) {
            case Mode::None:
                if (at_model_field("merges")) return fail(merge_error());
                return dom_value(std::move(dom));
            case Mode::VocabMap:
                if (!as_int || *as_int < 0 || *as_int > INT32_MAX)
                    return fail(vocab_key_path() + ": expected a non-negative integer id");
                if (*as_int >= kMaxVocabId) {
                    if (!doc_.vocab_id_too_large) doc_.vocab_id_too_large = vocab_key_;
                    return true;
                }
                doc_.vocab_map.insert(vocab_key_, static_cast<int32_t>(*as_int));
                return true;
            case Mode::VocabList:
                if (depth_ == 2 && entry_items_ == 1) {
                    score_ = as_double;
                    ++entry_items_;
                    return true;
                }
                return fail(list_entry_path() + ": expected [piece, score]");
            case Mode::Merges:
                return fail(merge_error());
        }
        return true;
    }

    std::string vocab_key_path() const { return "tokenizer.json: model.vocab[\"" + vocab_key_ + "\"]"; }
    std::string list_entry_path() const { return "tokenizer.json: model.vocab[" + std::to_string(entry_index_) + "]"; }
    static std::string merges_too_large() { return "tokenizer.json: model.merges: more than 4 GiB of tokens"; }
    std::string merge_error() const {
        return "tokenizer.json: model.merges[" + std::to_string(entry_index_) +
               "]: expected \"a b\" string or [a, b] pair";
    }

    TokenizerDocument& doc_;
    std::string error_;
    std::vector<json*> stack_;
    std::vector<std::string> keys_;  // current key of each open object
    json* current_slot_ = nullptr;
    Mode mode_ = Mode::None;
    int depth_ = 0;
    size_t entry_index_ = 0;
    int entry_items_ = 0;
    std::string vocab_key_;
    std::string piece_;
    double score_ = 0;
    std::pair<std::string, std::string> pair_;
};

}  // namespace

TokenizerDocument parse_tokenizer_json(std::string_view text) {
    TokenizerDocument doc;
    Handler handler(doc);
    const bool ok = json::sax_parse(text.begin(), text.end(), &handler);
    if (!ok) throw Error(handler.error().empty() ? std::string("tokenizer.json: invalid JSON") : handler.error());
    if (!doc.root.is_object()) throw Error("tokenizer.json: top level must be an object");
    return doc;
}

}  // namespace tfx::tok
