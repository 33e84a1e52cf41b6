#include "pre_tokenizers.h"

#include "byte_level.h"

namespace tfx::tok {
namespace {

constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The Whitespace pre-tokenizer's `\w+|[^\w\s]+` (regex crate semantics), inverted: word
// runs and symbol runs are kept pieces, whitespace runs are the matches to remove.
class WordsAndSymbolsPattern final : public Pattern {
  public:
    void find_matches(std::string_view text, std::vector<MatchPiece>& out) const override {
        out.clear();
        if (text.empty()) {
            out.push_back({0, 0, false});
            return;
        }
        enum Kind { kWord, kSpace, kSymbol };
        size_t i = 0, len;
        int current = -1;
        while (i < text.size()) {
            const char32_t c = utf8::decode(text, i, len);
            const int kind = utf8::is_word_char(c) ? kWord : utf8::is_whitespace(c) ? kSpace : kSymbol;
            if (kind == current)
                out.back().end = i + len;
            else
                out.push_back({i, i + len, kind == kSpace});
            current = kind;
            i += len;
        }
    }
};

}  // namespace

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
    : add_prefix_space_(add_prefix_space) {
    if (use_regex) {
        static const auto gpt2 = std::make_shared<const Regex>(kGpt2Pattern);
        regex_ = gpt2;
    }
}

void ByteLevelPreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
    pts.split_pieces([&](NormalizedString& ns, std::vector<NormalizedString>& out) {
        if (add_prefix_space_ && !ns.get().starts_with(' ')) ns.prepend(" ");
        if (regex_)
            ns.split(*regex_, SplitBehavior::Isolated, out);
        else
            out.push_back(std::move(ns));
    });
    pts.normalize([](NormalizedString& ns) { byte_level::map_bytes(ns); });
}

SplitPreTokenizer::SplitPreTokenizer(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert)
    : pattern_(invert ? std::make_shared<const InvertedPattern>(std::move(pattern)) : std::move(pattern)),
      behavior_(behavior) {}

void SplitPreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
    pts.split_pieces(
        [&](NormalizedString& ns, std::vector<NormalizedString>& out) { ns.split(*pattern_, behavior_, out); });
}

void PatternPreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
    pts.split_pieces(
        [&](NormalizedString& ns, std::vector<NormalizedString>& out) { ns.split(*pattern_, behavior_, out); });
}

PreTokenizerPtr make_whitespace_pre_tokenizer() {
    return std::make_shared<PatternPreTokenizer>(std::make_shared<WordsAndSymbolsPattern>(), SplitBehavior::Removed);
}

PreTokenizerPtr make_whitespace_split_pre_tokenizer() {
    return std::make_shared<PatternPreTokenizer>(make_char_pattern(utf8::is_whitespace), SplitBehavior::Removed);
}

PreTokenizerPtr make_punctuation_pre_tokenizer(SplitBehavior behavior) {
    return std::make_shared<PatternPreTokenizer>(make_char_pattern(utf8::is_bert_punctuation), behavior);
}

PreTokenizerPtr make_digits_pre_tokenizer(bool individual_digits) {
    return std::make_shared<PatternPreTokenizer>(
        make_char_pattern(utf8::is_numeric), individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
}

PreTokenizerPtr make_char_delimiter_pre_tokenizer(char32_t delimiter) {
    return std::make_shared<PatternPreTokenizer>(make_char_pattern([delimiter](char32_t c) { return c == delimiter; }),
                                                 SplitBehavior::Removed);
}

void BertPreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
    static const auto whitespace = make_char_pattern(utf8::is_whitespace);
    static const auto punctuation = make_char_pattern(utf8::is_bert_punctuation);
    pts.split_pieces([&](NormalizedString& ns, std::vector<NormalizedString>& out) {
        ns.split(*whitespace, SplitBehavior::Removed, out);
    });
    pts.split_pieces([&](NormalizedString& ns, std::vector<NormalizedString>& out) {
        ns.split(*punctuation, SplitBehavior::Isolated, out);
    });
}

MetaspacePreTokenizer::MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
    : replacement_(replacement),
      is_replacement_(make_char_pattern([replacement](char32_t c) { return c == replacement; })),
      scheme_(scheme),
      split_(split) {
    utf8::append(replacement_utf8_, replacement_);
}

void MetaspacePreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
    static const LiteralPattern space(" ");
    pts.split_pieces([&](NormalizedString& ns, std::vector<NormalizedString>& out) {
        ns.replace(space, replacement_utf8_);
        const bool starts_with_replacement = ns.get().starts_with(replacement_utf8_);
        if ((scheme_ == PrependScheme::Always && !starts_with_replacement) ||
            (scheme_ == PrependScheme::First && !starts_with_replacement && ns.original_shift() == 0))
            ns.prepend(replacement_utf8_);
        if (split_)
            ns.split(*is_replacement_, SplitBehavior::MergedWithNext, out);
        else
            out.push_back(std::move(ns));
    });
}

}  // namespace tfx::tok
