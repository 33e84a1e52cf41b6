#include "decoders.h"

#include "byte_level.h"
#include "utf8.h"

namespace tfx::tok {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    if (from.empty()) return;
    std::string out;
    size_t last = 0;
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, last)) {
        out.append(s, last, pos - last);
        out.append(to);
        last = pos + from.size();
    }
    if (last == 0) return;
    out.append(s, last);
    s = std::move(out);
}

// WordPiece's detokenization cleanup of spaces before punctuation and contractions.
void cleanup(std::string& s) {
    static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
        {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) replace_all(s, from, to);
}

}  // namespace

void ByteLevelDecoder::decode_chain(std::vector<std::string>& tokens) const {
    std::string bytes;
    for (const auto& t : tokens) {
        const size_t before = bytes.size();
        bool all_mapped = true;
        for (size_t i = 0, len; i < t.size(); i += len) {
            const auto b = byte_level::char_to_byte(utf8::decode(t, i, len));
            if (!b) {
                all_mapped = false;
                break;
            }
            bytes.push_back(static_cast<char>(*b));
        }
        if (!all_mapped) {  // a token outside the byte alphabet passes through as-is
            bytes.resize(before);
            bytes += t;
        }
    }
    tokens.assign(1, utf8::lossy(bytes));
}

void MetaspaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        const std::string& t = tokens[i];
        for (size_t k = 0, len; k < t.size(); k += len) {
            const char32_t c = utf8::decode(t, k, len);
            if (c != replacement_)
                out.append(t, k, len);
            else if (i != 0 || scheme_ == PrependScheme::Never)
                out.push_back(' ');
        }
        tokens[i] = std::move(out);
    }
}

void WordPieceDecoder::decode_chain(std::vector<std::string>& tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
        std::string& t = tokens[i];
        if (i != 0) {
            if (t.starts_with(prefix_))
                t.erase(0, prefix_.size());
            else
                t.insert(t.begin(), ' ');
        }
        if (cleanup_) cleanup(t);
    }
}

void ByteFallbackDecoder::decode_chain(std::vector<std::string>& tokens) const {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    const auto flush = [&] {
        if (pending_count == 0) return;
        if (!utf8::find_invalid(pending))
            out.push_back(pending);
        else
            for (size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
        pending.clear();
        pending_count = 0;
    };
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (auto& t : tokens) {
        // "<0xNN>"; like Rust's u8::from_str_radix, a leading '+' is accepted.
        int value = -1;
        if (t.size() == 6 && t.starts_with("<0x") && t.back() == '>') {
            const int hi = hex(t[3]), lo = hex(t[4]);
            if (hi >= 0 && lo >= 0)
                value = hi * 16 + lo;
            else if (t[3] == '+' && lo >= 0)
                value = lo;
        }
        if (value >= 0) {
            pending.push_back(static_cast<char>(value));
            ++pending_count;
        } else {
            flush();
            out.push_back(std::move(t));
        }
    }
    flush();
    tokens = std::move(out);
}

void FuseDecoder::decode_chain(std::vector<std::string>& tokens) const {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
}

void StripDecoder::decode_chain(std::vector<std::string>& tokens) const {
    for (auto& t : tokens) {
        std::vector<std::pair<size_t, size_t>> chars;  // (byte offset, length)
        for (size_t i = 0, len; i < t.size(); i += len) {
            const char32_t c = utf8::decode(t, i, len);
            chars.emplace_back(i, c == content_ ? len : 0);
        }
        size_t start_cut = 0;
        for (size_t i = 0; i < start_ && i < chars.size() && chars[i].second != 0; ++i) start_cut = i + 1;
        size_t stop_cut = chars.size();
        for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
            const size_t index = chars.size() - i - 1;
            if (chars[index].second == 0) break;
            stop_cut = index;
        }
        if (stop_cut <= start_cut) {
            t.clear();
            continue;
        }
        const size_t begin = start_cut < chars.size() ? chars[start_cut].first : t.size();
        const size_t end = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
        t = t.substr(begin, end - begin);
    }
}

void ReplaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
    thread_local std::vector<MatchPiece> pieces;
    for (auto& t : tokens) {
        pattern_->find_matches(t, pieces);
        std::string out;
        for (const auto& p : pieces) {
            if (p.is_match)
                out += content_;
            else
                out.append(t, p.begin, p.end - p.begin);
        }
        t = std::move(out);
    }
}

void BpeDecoder::decode_chain(std::vector<std::string>& tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
}

void CtcDecoder::decode_chain(std::vector<std::string>& tokens) const {
    std::vector<std::string> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // collapse repeats
        std::string t = tokens[i];
        replace_all(t, pad_token_, "");
        if (cleanup_) {
            cleanup(t);
            replace_all(t, word_delimiter_token_, " ");
        }
        if (!t.empty()) out.push_back(std::move(t));
    }
    tokens = std::move(out);
}

}  // namespace tfx::tok
