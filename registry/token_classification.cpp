#include "registry/token_classification.h"

#include "registry/text_offsets.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

size_t best_index(std::span<const float> scores) {
    return static_cast<size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

// Mean ignoring NaN, as numpy's nanmean (NaN when all are).
float nan_mean(std::span<const float> values) {
    double sum = 0.0;
    int64_t count = 0;
    for (float v : values) {
        if (std::isnan(v)) continue;
        sum += v;
        ++count;
    }
    return count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : NAN;
}

// An entity and the tokens it covers (for joining a group's text).
struct Spanned {
    Entity entity;
    size_t first, last;  // tokens [first, last]
};

// aggregate_word: the tokens [first, last] of one word as one entity.
Spanned merge_word(std::span<const TokenScores> tokens, size_t first, size_t last,
                   const std::vector<std::string>& labels, Aggregation aggregation, const JoinTokens& join) {
    const std::span<const TokenScores> word = tokens.subspan(first, last - first + 1);
    std::vector<float> scores;
    if (aggregation == Aggregation::first) {
        scores = word.front().scores;
    } else if (aggregation == Aggregation::max) {
        // The token whose best score is highest (the first of equals).
        const TokenScores* sure = &word.front();
        for (const TokenScores& t : word) {
            if (*std::max_element(t.scores.begin(), t.scores.end()) >
                *std::max_element(sure->scores.begin(), sure->scores.end())) {
                sure = &t;
            }
        }
        scores = sure->scores;
    } else {
        scores.assign(word.front().scores.size(), 0.0f);
        std::vector<float> column(word.size());
        for (size_t l = 0; l < scores.size(); ++l) {
            for (size_t i = 0; i < word.size(); ++i) column[i] = word[i].scores[l];
            scores[l] = nan_mean(column);
        }
    }
    const size_t label = best_index(scores);
    return {
        {labels.at(label), scores[label], std::nullopt, join(word), word.front().start, word.back().end}, first, last};
}

// get_tag: B- or I- and the type; a label in neither form continues (I) a group of itself.
std::pair<char, std::string> tag_of(const std::string& label) {
    if (label.starts_with("B-")) return {'B', label.substr(2)};
    if (label.starts_with("I-")) return {'I', label.substr(2)};
    return {'I', label};
}

// group_sub_entities: consecutive entities [begin, end) as one group.
Entity merge_group(std::span<const Spanned> group, std::span<const TokenScores> tokens, const JoinTokens& join) {
    const std::string& first = group.front().entity.label;
    const size_t dash = first.find('-');
    std::vector<float> scores;
    for (const Spanned& s : group) scores.push_back(s.entity.score);
    const size_t begin = group.front().first, end = group.back().last + 1;
    return {dash == std::string::npos ? first : first.substr(dash + 1),
            nan_mean(scores),
            std::nullopt,
            join(tokens.subspan(begin, end - begin)),
            group.front().entity.start,
            group.back().entity.end};
}

}  // namespace

Aggregation aggregation_named(const std::string& name) {
    if (name == "none") return Aggregation::none;
    if (name == "simple") return Aggregation::simple;
    if (name == "first") return Aggregation::first;
    if (name == "average") return Aggregation::average;
    if (name == "max") return Aggregation::max;
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                     "aggregation strategy '" + name + "': expected none, simple, first, average or max");
}

std::vector<Entity> aggregate_entities(std::span<const TokenScores> tokens, const std::vector<std::string>& labels,
                                       Aggregation aggregation, const JoinTokens& join,
                                       const std::vector<std::string>& ignore_labels) {
    std::vector<Spanned> entities;
    if (aggregation == Aggregation::none || aggregation == Aggregation::simple) {
        for (size_t i = 0; i < tokens.size(); ++i) {
            const TokenScores& t = tokens[i];
            const size_t label = best_index(t.scores);
            entities.push_back({{labels.at(label), t.scores[label], t.index, t.word, t.start, t.end}, i, i});
        }
    } else {
        // aggregate_words: a word starts at every token that is not a subword.
        size_t first = 0;
        for (size_t i = 1; i <= tokens.size() && !tokens.empty(); ++i) {
            if (i < tokens.size() && tokens[i].is_subword) continue;
            entities.push_back(merge_word(tokens, first, i - 1, labels, aggregation, join));
            first = i;
        }
    }
    std::vector<Entity> out;
    if (aggregation == Aggregation::none) {
        for (Spanned& s : entities) out.push_back(std::move(s.entity));
    } else {
        // group_entities: a group goes on while the type stays and no B- tag starts a new one.
        size_t begin = 0;
        for (size_t i = 1; i <= entities.size() && !entities.empty(); ++i) {
            if (i < entities.size()) {
                const auto [bi, tag] = tag_of(entities[i].entity.label);
                const auto [last_bi, last_tag] = tag_of(entities[i - 1].entity.label);
                if (tag == last_tag && bi != 'B') continue;
            }
            out.push_back(merge_group(std::span(entities).subspan(begin, i - begin), tokens, join));
            begin = i;
        }
    }
    std::erase_if(out, [&](const Entity& e) {
        return std::find(ignore_labels.begin(), ignore_labels.end(), e.label) != ignore_labels.end();
    });
    return out;
}

nlohmann::json entities_json(const std::vector<Entity>& entities, Aggregation aggregation) {
    nlohmann::json all = nlohmann::json::array();
    for (const Entity& e : entities) {
        nlohmann::json j = {{aggregation == Aggregation::none ? "entity" : "entity_group", e.label},
                            {"score", e.score}};
        if (e.index) j["index"] = *e.index;
        j["word"] = e.word;
        j["start"] = e.start;
        j["end"] = e.end;
        all.push_back(std::move(j));
    }
    return all;
}

bool is_subword_token(const std::u32string& text, const std::u32string& token, int64_t start, int64_t end,
                      bool word_aware) {
    if (word_aware) return static_cast<int64_t>(token.size()) != end - start;
    // " " not in text[start - 1 : start + 1] (the slice stops at the text's end).
    const auto at = static_cast<size_t>(start);
    return start > 0 && at <= text.size() && text[at - 1] != U' ' && (at == text.size() || text[at] != U' ');
}

TokenClassificationPipeline::TokenClassificationPipeline(const std::string& model, const LoadOptions& options)
    : TaskPipeline(model, options) {
    if (session_->task_head() != "token_classification") {
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         session_->architecture() + " is not a token classifier (such as BertForTokenClassification)");
    }
    // transformers fuses subwords exactly only for tokenizers with a continuing_subword_prefix.
    word_aware_ = word_aware_tokenizer(session_->model_dir());
}

std::vector<Entity> TokenClassificationPipeline::operator()(const std::string& text, Aggregation aggregation,
                                                            const std::vector<std::string>& ignore_labels) {
    return (*this)(std::vector<std::string>{text}, aggregation, ignore_labels).front();
}

std::vector<std::vector<Entity>> TokenClassificationPipeline::operator()(
    const std::vector<std::string>& texts, Aggregation aggregation, const std::vector<std::string>& ignore_labels) {
    std::vector<Tokenizer::Encoding> encodings;
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& text : texts) {
        encodings.push_back(tokenizer_->encode_with_offsets(text));
        ids.push_back(encodings.back().ids);
    }
    const std::vector<Outputs> outputs = run_batch(ids, std::vector<std::vector<int32_t>>(ids.size()));
    const int64_t width = session_->info().output_size;
    const std::vector<std::string> labels = label_names(*session_, width);
    const std::optional<int32_t> unknown = tokenizer_->special_id("unk_token");
    const JoinTokens join = [&](std::span<const TokenScores> part) {
        std::vector<int32_t> part_ids;
        for (const TokenScores& t : part) part_ids.push_back(t.id);
        return tokenizer_->decode(part_ids, false, false);
    };
    std::vector<std::vector<Entity>> entities;
    for (size_t n = 0; n < texts.size(); ++n) {
        const std::string& text = texts[n];
        const Tokenizer::Encoding& encoding = encodings[n];
        const Outputs& out = outputs[n];
        const std::u32string chars = code_points(text);
        const std::vector<int64_t> char_of = char_index_of_bytes(text);
        std::vector<TokenScores> tokens;
        for (size_t i = 0; i < encoding.ids.size(); ++i) {
            const int32_t id = encoding.ids[i];
            if (tokenizer_->is_special(id)) continue;
            auto [begin, end] = encoding.offsets[i];
            begin = std::clamp<int64_t>(begin, 0, static_cast<int64_t>(text.size()));
            end = std::clamp<int64_t>(end, begin, static_cast<int64_t>(text.size()));
            TokenScores t{id,           tokenizer_->id_to_token(id).value_or(""),
                          {},           char_of[begin],
                          char_of[end], static_cast<int64_t>(i),
                          false};
            t.scores.assign(out.values.begin() + static_cast<int64_t>(i) * width,
                            out.values.begin() + static_cast<int64_t>(i + 1) * width);
            softmax_in_place(t.scores);
            if (unknown && id == *unknown) {
                t.word = text.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
            } else {
                t.is_subword = is_subword_token(chars, code_points(t.word), t.start, t.end, word_aware_);
            }
            tokens.push_back(std::move(t));
        }
        entities.push_back(aggregate_entities(tokens, labels, aggregation, join, ignore_labels));
    }
    return entities;
}

}  // namespace tfx
