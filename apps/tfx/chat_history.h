// The conversation of `tfx chat`: messages as JSON [{"role", "content"}], checked UTF-8,
// saved and loaded (with the file's faults named), and fitted into the model's context by
// dropping the oldest turns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::cli {

// The offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points past U+10FFFF included); nullopt when valid.
std::optional<size_t> invalid_utf8_offset(std::string_view text);
// The text with each ill-formed sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

// A JSON array of {"role": one of system/user/assistant/tool, "content": string} objects;
// throws std::runtime_error naming the file and the message at fault.
nlohmann::ordered_json load_messages(const std::filesystem::path& file);
// Written whole or not at all (a temporary file renamed over FILE).
void save_messages(const std::filesystem::path& file, const nlohmann::ordered_json& messages);

// The conversation ready for one reply: the prompt ids, the new-token budget and how it was fitted.
struct FittedPrompt {
    nlohmann::ordered_json messages;  // the history, less the turns dropped
    std::vector<int32_t> prompt;
    int64_t max_new_tokens = 0;
    size_t dropped = 0;   // messages dropped from the front (after a system message)
    bool capped = false;  // max_new_tokens lowered: the last message alone fills most of the context
};
// Drops the oldest turns (a message and the replies up to the next user message; never a
// leading system message, never the last message) until prompt + budget fits max_positions
// (0: no limit). When only the system message and the last message are left and they still
// do not fit with the full budget, the budget shrinks to what is left; when not even one new
// token fits, throws. `encode` renders messages to ids (the chat template; its errors pass
// through), `budget` gives the new-token budget for a prompt length.
FittedPrompt fit_to_context(nlohmann::ordered_json messages, int64_t max_positions,
                            const std::function<std::vector<int32_t>(const nlohmann::ordered_json&)>& encode,
                            const std::function<int64_t(int64_t prompt_length)>& budget);

}  // namespace tfx::cli
