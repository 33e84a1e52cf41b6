#include "wordpiece.h"

#include "../error.h"
#include "../utf8.h"

namespace tfx::tok {

Token WordPieceModel::unk(size_t len) const {
    const auto id = vocab_.find(unk_token_);
    if (!id) throw Error("WordPiece unk_token \"" + unk_token_ + "\" is not in the vocabulary");
    return {*id, unk_token_, 0, len};
}

void WordPieceModel::tokenize(std::string_view piece, std::vector<Token>& out) const {
    if (utf8::char_count(piece) > max_input_chars_per_word_) {
        out.push_back(unk(piece.size()));
        return;
    }
    const size_t first = out.size();
    thread_local std::string candidate;
    size_t start = 0;
    while (start < piece.size()) {
        size_t end = piece.size();
        bool found = false;
        while (start < end) {
            std::string_view sub = piece.substr(start, end - start);
            if (start > 0) {
                candidate.assign(prefix_);
                candidate += sub;
                sub = candidate;
            }
            if (const auto id = vocab_.find(sub)) {
                out.push_back({*id, std::string(sub), start, end});
                found = true;
                break;
            }
            // Drop the last char of the candidate.
            size_t cut = end - 1;
            while (cut > start && (static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) --cut;
            end = cut;
        }
        if (!found) {
            out.resize(first);
            out.push_back(unk(piece.size()));
            return;
        }
        start = end;
    }
}

void WordLevelModel::tokenize(std::string_view piece, std::vector<Token>& out) const {
    if (const auto id = vocab_.find(piece)) {
        out.push_back({*id, std::string(piece), 0, piece.size()});
        return;
    }
    const auto unk_id = vocab_.find(unk_token_);
    if (!unk_id) throw Error("WordLevel unk_token \"" + unk_token_ + "\" is not in the vocabulary");
    out.push_back({*unk_id, unk_token_, 0, piece.size()});
}

}  // namespace tfx::tok
