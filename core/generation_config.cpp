#include "core/generation_config.h"

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

int32_t token_id(const sdk::Config& c, const char* key, const nlohmann::json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        c.fail(key, "expected token ids (integers >= 0), got " + v.dump());
    return v.get<int32_t>();
}

// An id or a list of ids (eos_token_id, forced_eos_token_id).
std::vector<int32_t> token_ids(const sdk::Config& c, const char* key) {
    std::vector<int32_t> ids;
    if (!c.has(key)) return ids;
    const auto& v = c.json().at(key);
    if (v.is_array()) {
        for (const auto& id : v) ids.push_back(token_id(c, key, id));
    } else if (v.is_number_integer()) {
        ids.push_back(token_id(c, key, v));
    } else {
        c.fail(key, "expected an integer or a list of integers, got " + v.dump());
    }
    return ids;
}

std::optional<int32_t> optional_id(const sdk::Config& c, const char* key) {
    const std::vector<int32_t> ids = token_ids(c, key);
    if (ids.empty()) return std::nullopt;
    return ids.front();
}

// A special token's id or ids; a negative one (some configs write -1 for "none") is left out.
std::vector<int32_t> special_ids(const sdk::Config& c, const char* key) {
    std::vector<int32_t> ids;
    const auto& v = c.json().at(key);
    for (const auto& id : v.is_array() ? v : nlohmann::json::array({v})) {
        if (!id.is_number_integer()) c.fail(key, "expected an integer or a list of integers, got " + v.dump());
        if (id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX) ids.push_back(id.get<int32_t>());
    }
    return ids;
}

// A list of token-id lists (bad_words_ids), each non-empty.
std::vector<std::vector<int32_t>> id_lists(const sdk::Config& c, const char* key, const nlohmann::json& v) {
    std::vector<std::vector<int32_t>> lists;
    if (!v.is_array()) c.fail(key, "expected a list of token id lists, got " + v.dump());
    for (const auto& list : v) {
        if (!list.is_array() || list.empty()) c.fail(key, "expected non-empty lists of token ids, got " + list.dump());
        std::vector<int32_t> ids;
        for (const auto& id : list) ids.push_back(token_id(c, key, id));
        lists.push_back(std::move(ids));
    }
    return lists;
}

// "(94, 1030)" or "(313,)": the key transformers writes for a tuple when it saves sequence_bias.
std::vector<int32_t> tuple_key(const sdk::Config& c, const std::string& key) {
    std::vector<int32_t> ids;
    std::string body = key;
    if (body.size() >= 2 && body.front() == '(' && body.back() == ')') body = body.substr(1, body.size() - 2);
    std::stringstream items(body);
    std::string item;
    while (std::getline(items, item, ',')) {
        if (item.find_first_not_of(' ') == std::string::npos) continue;
        try {
            size_t used = 0;
            const long long id = std::stoll(item, &used);
            if (id < 0 || id > INT32_MAX || item.find_first_not_of(' ', used) != std::string::npos) throw 0;
            ids.push_back(static_cast<int32_t>(id));
        } catch (...) {
            c.fail("sequence_bias", "key '" + key + "' is not a tuple of token ids such as \"(12, 34)\"");
        }
    }
    if (ids.empty()) c.fail("sequence_bias", "key '" + key + "' holds no token ids");
    return ids;
}

// [[[ids...], bias], ...] (what GenerationConfig(sequence_bias=[...]) takes) or
// {"(ids...)": bias} (what it saves).
std::vector<std::pair<std::vector<int32_t>, float>> sequence_bias(const sdk::Config& c) {
    std::vector<std::pair<std::vector<int32_t>, float>> biases;
    const auto& v = c.json().at("sequence_bias");
    auto bias_value = [&](const nlohmann::json& b) {
        if (!b.is_number()) c.fail("sequence_bias", "expected a number as the bias, got " + b.dump());
        return b.get<float>();
    };
    if (v.is_object()) {
        for (const auto& [key, bias] : v.items()) biases.emplace_back(tuple_key(c, key), bias_value(bias));
    } else if (v.is_array()) {
        for (const auto& entry : v) {
            if (!entry.is_array() || entry.size() != 2)
                c.fail("sequence_bias", "expected [[token ids], bias] pairs, got " + entry.dump());
            biases.emplace_back(id_lists(c, "sequence_bias", nlohmann::json::array({entry[0]})).front(),
                                bias_value(entry[1]));
        }
    } else {
        c.fail("sequence_bias", "expected a list of [[token ids], bias] pairs, got " + v.dump());
    }
    return biases;
}

std::vector<std::string> strings(const sdk::Config& c, const char* key) {
    const auto& v = c.json().at(key);
    if (v.is_string()) return {v.get<std::string>()};
    std::vector<std::string> out;
    if (!v.is_array()) c.fail(key, "expected a string or a list of strings, got " + v.dump());
    for (const auto& s : v) {
        if (!s.is_string() || s.get<std::string>().empty()) c.fail(key, "expected non-empty strings, got " + s.dump());
        out.push_back(s.get<std::string>());
    }
    return out;
}

// Fields tfx reads (read() below) or that only shape transformers' Python return value.
const std::set<std::string, std::less<>> kHandled = {
    "max_new_tokens", "max_length", "min_length", "min_new_tokens", "max_time", "do_sample", "num_beams",
    "length_penalty", "early_stopping", "num_return_sequences", "sequence_bias", "encoder_repetition_penalty",
    "repetition_penalty", "encoder_no_repeat_ngram_size", "presence_penalty", "frequency_penalty",
    "no_repeat_ngram_size", "bad_words_ids", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "renormalize_logits", "temperature",
    "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "stop_strings", "eos_token_id",
    "pad_token_id", "bos_token_id", "decoder_start_token_id", "num_assistant_tokens", "prompt_lookup_num_tokens",
    "max_matching_ngram_size", "seed", "ignore_eos",
    // Bookkeeping: the output form of a Python call, or where the file came from.
    "transformers_version", "_from_model_config", "output_scores", "output_logits", "output_attentions",
    "output_hidden_states", "return_dict_in_generate", "use_cache", "return_legacy_cache", "cache_implementation",
    "cache_config", "generation_kwargs"};

// transformers features tfx does not have, with the value that leaves them off: a saved config
// commonly lists them at that value, which needs no warning.
const std::vector<std::pair<std::string, nlohmann::json>> kUnsupportedDefaults = {
    {"num_beam_groups", 1},           {"diversity_penalty", 0.0},
    {"penalty_alpha", nullptr},       {"force_words_ids", nullptr},
    {"constraints", nullptr},         {"forced_decoder_ids", nullptr},
    {"guidance_scale", nullptr},      {"low_memory", nullptr},
    {"watermarking_config", nullptr}, {"num_assistant_tokens_schedule", "heuristic"},
    {"dola_layers", nullptr},         {"token_healing", false},
};

std::string number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

}  // namespace

void GenerationConfig::read_special_tokens(const sdk::Config& c) {
    if (c.has("eos_token_id")) eos_token_ids = special_ids(c, "eos_token_id");
    for (auto [key, field] : {std::pair{"pad_token_id", &pad_token_id}, std::pair{"bos_token_id", &bos_token_id},
                              std::pair{"decoder_start_token_id", &decoder_start_token_id}}) {
        if (!c.has(key)) continue;
        const std::vector<int32_t> ids = special_ids(c, key);
        *field = ids.empty() ? std::nullopt : std::optional<int32_t>(ids.front());
    }
}

void GenerationConfig::read(const sdk::Config& c) {
    read_special_tokens(c);
    if (c.has("max_new_tokens")) {
        max_new_tokens = c.get<int64_t>("max_new_tokens");
        max_length.reset();
    } else if (c.has("max_length")) {
        max_length = c.get<int64_t>("max_length");
    }
    min_length = c.get_or<int64_t>("min_length", min_length);
    min_new_tokens = c.get_or<int64_t>("min_new_tokens", min_new_tokens);
    if (c.has("max_time")) max_time = c.get<double>("max_time");
    do_sample = c.get_or<bool>("do_sample", do_sample);
    num_beams = c.get_or<int64_t>("num_beams", num_beams);
    length_penalty = c.get_or<float>("length_penalty", length_penalty);
    if (c.has("early_stopping")) {
        const auto& v = c.json().at("early_stopping");
        if (v.is_boolean()) {
            early_stopping = v.get<bool>() ? EarlyStopping::always : EarlyStopping::heuristic;
        } else if (v == "never") {
            early_stopping = EarlyStopping::never;
        } else {
            c.fail("early_stopping", "expected true, false or \"never\", got " + v.dump());
        }
    }
    num_return_sequences = c.get_or<int64_t>("num_return_sequences", num_return_sequences);
    if (c.has("sequence_bias")) sequence_bias = tfx::sequence_bias(c);
    encoder_repetition_penalty = c.get_or<float>("encoder_repetition_penalty", encoder_repetition_penalty);
    repetition_penalty = c.get_or<float>("repetition_penalty", repetition_penalty);
    presence_penalty = c.get_or<float>("presence_penalty", presence_penalty);
    frequency_penalty = c.get_or<float>("frequency_penalty", frequency_penalty);
    no_repeat_ngram_size = c.get_or<int64_t>("no_repeat_ngram_size", no_repeat_ngram_size);
    encoder_no_repeat_ngram_size = c.get_or<int64_t>("encoder_no_repeat_ngram_size", encoder_no_repeat_ngram_size);
    if (c.has("bad_words_ids")) bad_words_ids = id_lists(c, "bad_words_ids", c.json().at("bad_words_ids"));
    if (c.has("forced_bos_token_id")) forced_bos_token_id = optional_id(c, "forced_bos_token_id");
    if (c.has("forced_eos_token_id")) forced_eos_token_ids = token_ids(c, "forced_eos_token_id");
    remove_invalid_values = c.get_or<bool>("remove_invalid_values", remove_invalid_values);
    if (c.has("exponential_decay_length_penalty")) {
        const auto& v = c.json().at("exponential_decay_length_penalty");
        if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number())
            c.fail("exponential_decay_length_penalty", "expected [start index, decay factor], got " + v.dump());
        exponential_decay_length_penalty = std::pair{v[0].get<int64_t>(), v[1].get<float>()};
    }
    if (c.has("suppress_tokens")) suppress_tokens = token_ids(c, "suppress_tokens");
    if (c.has("begin_suppress_tokens")) begin_suppress_tokens = token_ids(c, "begin_suppress_tokens");
    renormalize_logits = c.get_or<bool>("renormalize_logits", renormalize_logits);
    temperature = c.get_or<float>("temperature", temperature);
    top_k = c.get_or<int64_t>("top_k", top_k);
    top_p = c.get_or<double>("top_p", top_p);
    min_p = c.get_or<float>("min_p", min_p);
    typical_p = c.get_or<float>("typical_p", typical_p);
    epsilon_cutoff = c.get_or<float>("epsilon_cutoff", epsilon_cutoff);
    eta_cutoff = c.get_or<float>("eta_cutoff", eta_cutoff);
    if (c.has("stop_strings")) stop_strings = strings(c, "stop_strings");
    num_assistant_tokens = c.get_or<int64_t>("num_assistant_tokens", num_assistant_tokens);
    prompt_lookup_num_tokens = c.get_or<int64_t>("prompt_lookup_num_tokens", prompt_lookup_num_tokens);
    max_matching_ngram_size = c.get_or<int64_t>("max_matching_ngram_size", max_matching_ngram_size);
    // tfx's own: a sampling seed, and decoding past EOS.
    if (c.has("seed")) seed = static_cast<uint64_t>(c.get<int64_t>("seed"));
    ignore_eos = c.get_or<bool>("ignore_eos", ignore_eos);
}

GenerationConfig GenerationConfig::from_model(const sdk::Config& config, const std::optional<sdk::Config>& generation) {
    // config.json gives the special tokens only; generation_config.json, when there is one,
    // gives everything it names.
    GenerationConfig g;
    g.read_special_tokens(config);
    if (generation) g.read(*generation);
    return g;
}

GenerationConfig GenerationConfig::from_file(const sdk::Config& file, const GenerationConfig& model_defaults) {
    GenerationConfig g;
    g.read(file);
    if (g.eos_token_ids.empty()) g.eos_token_ids = model_defaults.eos_token_ids;
    if (!g.pad_token_id) g.pad_token_id = model_defaults.pad_token_id;
    if (!g.bos_token_id) g.bos_token_id = model_defaults.bos_token_id;
    if (!g.decoder_start_token_id) g.decoder_start_token_id = model_defaults.decoder_start_token_id;
    return g;
}

std::vector<std::string> GenerationConfig::unsupported_fields(const sdk::Config& file) {
    std::vector<std::string> fields;
    for (const auto& [key, value] : file.json().items()) {
        if (kHandled.contains(key)) continue;
        bool at_default = false;
        bool known = false;
        for (const auto& [name, off] : kUnsupportedDefaults) {
            if (name != key) continue;
            known = true;
            at_default = value.is_null() || value == off;
        }
        if (!at_default) fields.push_back(key + (known ? " (not supported)" : " (unknown)"));
    }
    return fields;
}

// The ranges of transformers' GenerationConfig.validate() and of its logits processors' own
// checks, plus finiteness, and a floor on temperature: below it logits / temperature overflows
// to inf and the draw is NaN. Each message starts with the field's name (the command line maps
// it to its option).
void GenerationConfig::validate() const {
    auto fail = [](const std::string& what) { throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, what); };
    if (max_new_tokens < 0) fail("max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
    if (max_length && *max_length < 0) fail("max_length must be >= 0, got " + std::to_string(*max_length));
    if (min_length < 0) fail("min_length must be >= 0, got " + std::to_string(min_length));
    if (min_new_tokens < 0) fail("min_new_tokens must be >= 0, got " + std::to_string(min_new_tokens));
    if (max_time && !(*max_time > 0.0)) fail("max_time must be a number of seconds > 0, got " + number(*max_time));
    if (num_beams < 1) fail("num_beams must be >= 1, got " + std::to_string(num_beams));
    if (!std::isfinite(length_penalty)) fail("length_penalty must be a finite number, got " + number(length_penalty));
    if (num_return_sequences < 1)
        fail("num_return_sequences must be >= 1, got " + std::to_string(num_return_sequences));
    if (num_beams > 1 && num_return_sequences > num_beams) {
        fail("num_return_sequences must be <= num_beams (" + std::to_string(num_beams) + "), got " +
             std::to_string(num_return_sequences));
    }
    if (num_beams == 1 && !do_sample && num_return_sequences > 1)
        fail("num_return_sequences must be 1 for greedy decoding (set num_beams or do_sample), got " +
             std::to_string(num_return_sequences));
    if (num_beams > 1 && do_sample)
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "num_beams > 1 with do_sample (beam sampling) is not supported");
    if (num_assistant_tokens < 1)
        fail("num_assistant_tokens must be >= 1, got " + std::to_string(num_assistant_tokens));
    if (prompt_lookup_num_tokens < 0)
        fail("prompt_lookup_num_tokens must be >= 0 (0: off), got " + std::to_string(prompt_lookup_num_tokens));
    if (max_matching_ngram_size < 1)
        fail("max_matching_ngram_size must be >= 1, got " + std::to_string(max_matching_ngram_size));
    for (const auto& [name, value] : {std::pair{"repetition_penalty", repetition_penalty},
                                      std::pair{"encoder_repetition_penalty", encoder_repetition_penalty}}) {
        if (!(std::isfinite(value) && value > 0.0f))
            fail(std::string(name) + " must be a finite number > 0 (1: off), got " + number(value));
    }
    for (const auto& [name, value] :
         {std::pair{"presence_penalty", presence_penalty}, std::pair{"frequency_penalty", frequency_penalty}}) {
        if (!(value >= -2.0f && value <= 2.0f))
            fail(std::string(name) + " must be a number in [-2, 2] (0: off), got " + number(value));
    }
    for (const auto& [name, value] : {std::pair{"no_repeat_ngram_size", no_repeat_ngram_size},
                                      std::pair{"encoder_no_repeat_ngram_size", encoder_no_repeat_ngram_size}}) {
        if (value < 0) fail(std::string(name) + " must be >= 0 (0: off), got " + std::to_string(value));
    }
    for (const auto& [ids, bias] : sequence_bias) {
        if (ids.empty() || !std::isfinite(bias)) fail("sequence_bias: expected non-empty id lists with finite biases");
    }
    if (exponential_decay_length_penalty) {
        const auto [start, factor] = *exponential_decay_length_penalty;
        if (start < 0 || !(std::isfinite(factor) && factor > 0.0f))
            fail("exponential_decay_length_penalty must be [start >= 0, factor > 0], got [" + std::to_string(start) +
                 ", " + number(factor) + "]");
    }
    if (!do_sample) return;
    if (!(std::isfinite(temperature) && temperature >= kMinTemperature)) {
        fail("temperature must be a finite number >= " + number(kMinTemperature) + " when sampling, got " +
             number(temperature) + " (for argmax use greedy decoding)");
    }
    if (top_k < 0) fail("top_k must be an integer >= 0 (0 disables it), got " + std::to_string(top_k));
    if (!(top_p > 0.0 && top_p <= 1.0)) fail("top_p must be a number in (0, 1], got " + number(top_p));
    if (!(min_p >= 0.0f && min_p <= 1.0f))
        fail("min_p must be a number in [0, 1] (0 disables it), got " + number(min_p));
    if (!(typical_p > 0.0f && typical_p <= 1.0f))
        fail("typical_p must be a number in (0, 1] (1 disables it), got " + number(typical_p));
    if (!(epsilon_cutoff >= 0.0f && epsilon_cutoff < 1.0f))
        fail("epsilon_cutoff must be a number in [0, 1) (0 disables it), got " + number(epsilon_cutoff));
    if (!(eta_cutoff >= 0.0f && eta_cutoff < 1.0f))
        fail("eta_cutoff must be a number in [0, 1) (0 disables it), got " + number(eta_cutoff));
}

void GenerationConfig::validate(int64_t vocab_size) const {
    validate();
    auto check = [&](const char* field, int32_t id) {
        if (id < 0 || id >= vocab_size) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, std::string(field) + ": token id " + std::to_string(id) +
                                                           " is outside the vocabulary (size " +
                                                           std::to_string(vocab_size) + ")");
        }
    };
    for (const auto& [ids, bias] : sequence_bias)
        for (int32_t id : ids) check("sequence_bias", id);
    for (const auto& ids : bad_words_ids)
        for (int32_t id : ids) check("bad_words_ids", id);
    for (int32_t id : suppress_tokens) check("suppress_tokens", id);
    for (int32_t id : begin_suppress_tokens) check("begin_suppress_tokens", id);
    for (int32_t id : forced_eos_token_ids) check("forced_eos_token_id", id);
    if (forced_bos_token_id) check("forced_bos_token_id", *forced_bos_token_id);
}

}  // namespace tfx
