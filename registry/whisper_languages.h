// Whisper's languages by name: the `language` a user gives the speech pipeline may be a code
// ("de"), a token ("<|de|>") or a name ("german", "German"), as transformers' Whisper generate()
// accepts. Names are English, lowercase, with the common aliases (castilian, mandarin, ...).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tfx {

// The language code for a lowercase English language name or alias; nullopt for anything else
// (codes and tokens included).
std::optional<std::string> whisper_language_code(std::string_view name);

}  // namespace tfx
