// Text positions as transformers' pipelines report them: characters (code points, as Python's
// str indexes), where tokenizer plugins give byte offsets into UTF-8.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tfx {

// UTF-8 to code points (a stray byte counts as one).
std::u32string code_points(const std::string& s);

// The character index of every byte offset of s, and of its end (a byte inside a character
// maps to that character).
std::vector<int64_t> char_index_of_bytes(const std::string& s);

// Whether the model folder's tokenizer.json has a continuing_subword_prefix (WordPiece's "##"):
// transformers then finds word boundaries from the tokens exactly, else by the space heuristic.
bool word_aware_tokenizer(const std::filesystem::path& model_dir);

}  // namespace tfx
