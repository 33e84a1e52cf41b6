#include "registry/pair_encoding.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "tfx/sdk/error.hpp"

namespace tfx {

PairTemplate pair_template_of(const std::filesystem::path& tokenizer_json) {
    std::ifstream in(tokenizer_json);
    const auto json = nlohmann::json::parse(in, nullptr, false);
    const std::string where = tokenizer_json.string() + ": post_processor";
    auto fail = [&](const std::string& what) { throw sdk::Error(TFX_ERR_FORMAT, where + ": " + what); };
    nlohmann::json processor = json.is_object() && json.contains("post_processor") ? json["post_processor"] : nullptr;
    // A Sequence of processors: the one that lays out the pair.
    if (processor.is_object() && processor.value("type", "") == "Sequence" && processor.contains("processors")) {
        nlohmann::json found = nullptr;
        for (const auto& p : processor["processors"]) {
            const std::string type = p.is_object() ? p.value("type", "") : "";
            if (type == "TemplateProcessing" || type == "BertProcessing" || type == "RobertaProcessing") found = p;
        }
        processor = found;
    }
    PairTemplate t;
    const std::string type = processor.is_object() ? processor.value("type", "") : "";
    auto special_of = [&](const nlohmann::json& pair, const char* field) {
        if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer()) {
            fail(std::string(field) + ": expected [token, id]");
        }
        return std::vector<int32_t>{pair[1].get<int32_t>()};
    };
    if (type == "TemplateProcessing") {
        const auto& pair = processor.contains("pair") ? processor["pair"] : nlohmann::json();
        const auto& specials = processor.contains("special_tokens") ? processor["special_tokens"] : nlohmann::json();
        if (!pair.is_array()) fail("TemplateProcessing without a pair template");
        for (const auto& piece : pair) {
            if (piece.contains("Sequence")) {
                const auto& seq = piece["Sequence"];
                t.pieces.push_back({seq.value("id", "A") == "B" ? 1 : 0, {}, seq.value("type_id", 0)});
            } else if (piece.contains("SpecialToken")) {
                const auto& special = piece["SpecialToken"];
                const std::string name = special.value("id", "");
                if (!specials.is_object() || !specials.contains(name) || !specials[name].contains("ids")) {
                    fail("special token '" + name + "' has no ids in special_tokens");
                }
                t.pieces.push_back(
                    {-1, specials[name]["ids"].get<std::vector<int32_t>>(), special.value("type_id", 0)});
            } else {
                fail("a pair piece is neither Sequence nor SpecialToken");
            }
        }
    } else if (type == "BertProcessing") {
        const auto cls = special_of(processor.value("cls", nlohmann::json()), "cls");
        const auto sep = special_of(processor.value("sep", nlohmann::json()), "sep");
        t.pieces = {{-1, cls, 0}, {0, {}, 0}, {-1, sep, 0}, {1, {}, 1}, {-1, sep, 1}};
    } else if (type == "RobertaProcessing") {
        const auto cls = special_of(processor.value("cls", nlohmann::json()), "cls");
        const auto sep = special_of(processor.value("sep", nlohmann::json()), "sep");
        t.pieces = {{-1, cls, 0}, {0, {}, 0}, {-1, sep, 0}, {-1, sep, 0}, {1, {}, 0}, {-1, sep, 0}};
    } else {
        t.pieces = {{0, {}, 0}, {1, {}, 0}};  // no template: the two sequences back to back
    }
    return t;
}

PairEncoding encode_pair(const Tokenizer& tokenizer, const PairTemplate& layout, const std::string& first,
                         const std::string& second) {
    const Tokenizer::Encoding second_encoding = tokenizer.encode_with_offsets(second, false);
    return layout_pair(layout, tokenizer.encode_with_offsets(first, false).ids, second_encoding, 0,
                       static_cast<int64_t>(second_encoding.ids.size()));
}

PairEncoding layout_pair(const PairTemplate& layout, const std::vector<int32_t>& first,
                         const Tokenizer::Encoding& second, int64_t begin, int64_t end) {
    PairEncoding pair;
    for (const PairTemplate::Piece& piece : layout.pieces) {
        auto add = [&](int32_t id, int64_t second_index) {
            pair.ids.push_back(id);
            pair.type_ids.push_back(piece.type_id);
            pair.second_index.push_back(second_index);
        };
        if (piece.sequence == 0) {
            for (const int32_t id : first) add(id, -1);
        } else if (piece.sequence == 1) {
            for (int64_t i = begin; i < end; ++i) add(second.ids[static_cast<size_t>(i)], i);
        } else {
            for (const int32_t id : piece.special) add(id, -1);
        }
    }
    pair.second = second;
    return pair;
}

int64_t added_tokens(const PairTemplate& layout) {
    int64_t count = 0;
    for (const PairTemplate::Piece& piece : layout.pieces) {
        if (piece.sequence < 0) count += static_cast<int64_t>(piece.special.size());
    }
    return count;
}

void check_fits(const ModelSession& session, const PairEncoding& pair, const std::string& what,
                const std::string& why_not) {
    const int64_t limit = session.info().max_positions;
    if (limit > 0 && static_cast<int64_t>(pair.ids.size()) > limit) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, what + " take " + std::to_string(pair.ids.size()) +
                                                       " tokens, past the model's " + std::to_string(limit) +
                                                       " positions (" + why_not + ")");
    }
}

}  // namespace tfx
