#include "apps/tfx/chat_history.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tfx::cli {
namespace {

// The length of the well-formed UTF-8 sequence at text[i], or 0.
size_t utf8_sequence_length(std::string_view text, size_t i) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) return 1;
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        length = 3;
        if (b0 == 0xE0) low = 0xA0;   // overlong
        if (b0 == 0xED) high = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        length = 4;
        if (b0 == 0xF0) low = 0x90;   // overlong
        if (b0 == 0xF4) high = 0x8F;  // past U+10FFFF
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (size_t k = 2; k < length; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    }
    return length;
}

std::string json_type(const nlohmann::ordered_json& value) {
    if (value.is_string()) return "a string";
    if (value.is_number()) return "a number";
    if (value.is_boolean()) return "a boolean";
    if (value.is_null()) return "null";
    if (value.is_array()) return "an array";
    return "an object";
}

}  // namespace

std::optional<size_t> invalid_utf8_offset(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        const size_t length = utf8_sequence_length(text, i);
        if (length == 0) return i;
        i += length;
    }
    return std::nullopt;
}

std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t length = utf8_sequence_length(text, i);
        if (length == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(text.substr(i, length));
            i += length;
        }
    }
    return out;
}

nlohmann::ordered_json load_messages(const std::filesystem::path& file) {
    const std::string name = file.string();
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) throw std::runtime_error(name + ": is a folder, not a file");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(name + ": cannot read it (" + std::strerror(errno) + ")");
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::ordered_json messages;
    try {
        messages = nlohmann::ordered_json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(name + ": not valid JSON: " + e.what());
    }
    const std::string expected = R"(expected a JSON array of messages [{"role": ..., "content": ...}])";
    if (!messages.is_array()) throw std::runtime_error(name + ": " + expected + ", got " + json_type(messages));
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const std::string where = name + ": message " + std::to_string(i) + " (counting from 0): ";
        if (!m.is_object()) {
            throw std::runtime_error(where + R"(expected an object {"role": ..., "content": ...}, got )" +
                                     json_type(m));
        }
        if (!m.contains("role")) throw std::runtime_error(where + "has no \"role\"");
        if (!m["role"].is_string()) {
            throw std::runtime_error(where + "\"role\" must be a string, got " + json_type(m["role"]));
        }
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
            throw std::runtime_error(where + "\"role\" must be system, user, assistant or tool, got '" + role + "'");
        }
        if (!m.contains("content")) throw std::runtime_error(where + "has no \"content\"");
        if (!m["content"].is_string()) {
            throw std::runtime_error(where + "\"content\" must be a string, got " + json_type(m["content"]));
        }
    }
    return messages;
}

void save_messages(const std::filesystem::path& file, const nlohmann::ordered_json& messages) {
    const std::string name = file.string();
    std::filesystem::path temporary = file;
    temporary += ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error(name + ": cannot write it (" + std::strerror(errno) + ")");
        out << messages.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        out.flush();
        if (!out) {
            const std::string reason = std::strerror(errno);
            out.close();
            std::error_code ignored;
            std::filesystem::remove(temporary, ignored);
            throw std::runtime_error(name + ": cannot write it (" + reason + ")");
        }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, file, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw std::runtime_error(name + ": cannot write it (" + ec.message() + ")");
    }
}

FittedPrompt fit_to_context(nlohmann::ordered_json messages, int64_t max_positions,
                            const std::function<std::vector<int32_t>(const nlohmann::ordered_json&)>& encode,
                            const std::function<int64_t(int64_t prompt_length)>& budget) {
    FittedPrompt fitted;
    const size_t first = !messages.empty() && messages[0].value("role", "") == "system" ? 1 : 0;
    for (;;) {
        fitted.prompt = encode(messages);
        const auto length = static_cast<int64_t>(fitted.prompt.size());
        fitted.max_new_tokens = budget(length);
        if (max_positions <= 0 || (fitted.max_new_tokens > 0 && length + fitted.max_new_tokens <= max_positions)) break;
        if (messages.size() <= first + 1) {
            // Only the system message (if any) and the newest message are left.
            if (length >= max_positions) {
                throw std::runtime_error("the message is too long: the prompt is " + std::to_string(length) +
                                         " tokens and the model's context holds " + std::to_string(max_positions));
            }
            fitted.max_new_tokens = max_positions - length;
            fitted.capped = true;
            break;
        }
        // Drop the oldest turn: its first message and what follows up to the next user message.
        size_t end = first + 1;
        while (end + 1 < messages.size() && messages[end].value("role", "") != "user") ++end;
        messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first),
                       messages.begin() + static_cast<std::ptrdiff_t>(end));
        fitted.dropped += end - first;
    }
    fitted.messages = std::move(messages);
    return fitted;
}

}  // namespace tfx::cli
