#include "pattern.h"

#include <oniguruma.h>

#include <cstring>
#include <mutex>

#include "error.h"

namespace tfx::tok {
namespace {

void init_oniguruma() {
    static std::once_flag once;
    std::call_once(once, [] {
        OnigEncoding encodings[1] = {ONIG_ENCODING_UTF8};
        onig_initialize(encodings, 1);
    });
}

// One reusable match region per thread: onig_search needs one, allocating per call is slow.
struct ThreadRegion {
    OnigRegion* region = onig_region_new();
    ~ThreadRegion() { onig_region_free(region, 1); }
};

const UChar* as_uchar(const char* p) {
    return reinterpret_cast<const UChar*>(p);
}

}  // namespace

Regex::Regex(const std::string& pattern) {
    init_oniguruma();
    OnigErrorInfo info{};
    const int rc = onig_new(&reg_, as_uchar(pattern.data()), as_uchar(pattern.data() + pattern.size()),
                            ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &info);
    if (rc != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &info);
        reg_ = nullptr;
        throw Error("invalid regex '" + pattern + "': " + reinterpret_cast<const char*>(msg));
    }
}

Regex::~Regex() {
    if (reg_) onig_free(reg_);
}

bool Regex::search(std::string_view text, size_t from, size_t& begin, size_t& end) const {
    thread_local ThreadRegion tr;
    const char* base = text.data() ? text.data() : "";
    const UChar* start = as_uchar(base);
    const UChar* stop = start + text.size();
    const int r = onig_search(reg_, start, stop, start + from, stop, tr.region, ONIG_OPTION_NONE);
    if (r < 0) {
        if (r == ONIG_MISMATCH) return false;
        throw Error("regex search failed (code " + std::to_string(r) + ")");
    }
    begin = static_cast<size_t>(tr.region->beg[0]);
    end = static_cast<size_t>(tr.region->end[0]);
    return true;
}

void Regex::find_matches(std::string_view text, std::vector<MatchPiece>& out) const {
    out.clear();
    if (text.empty()) {
        out.push_back({0, 0, false});
        return;
    }
    size_t prev = 0;
    for_each_match(text, [&](size_t b, size_t e) {
        if (prev != b) out.push_back({prev, b, false});
        out.push_back({b, e, true});
        prev = e;
    });
    if (prev != text.size()) out.push_back({prev, text.size(), false});
}

LiteralPattern::LiteralPattern(std::string literal) : literal_(std::move(literal)) {
    if (literal_.empty()) empty_regex_ = std::make_unique<Regex>("");
}

void LiteralPattern::find_matches(std::string_view text, std::vector<MatchPiece>& out) const {
    if (empty_regex_) {
        empty_regex_->find_matches(text, out);
        return;
    }
    out.clear();
    if (text.empty()) {
        out.push_back({0, 0, false});
        return;
    }
    size_t prev = 0;
    for (size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size())) {
        if (prev != pos) out.push_back({prev, pos, false});
        out.push_back({pos, pos + literal_.size(), true});
        prev = pos + literal_.size();
    }
    if (prev != text.size()) out.push_back({prev, text.size(), false});
}

}  // namespace tfx::tok
