// One choice's text as its tokens arrive: decoded incrementally (special tokens skipped, as
// vLLM does by default) and cut before the first stop string. Text that could be the start of
// a stop string is held back until it is known not to be, so a streamed piece is never taken
// back; the pieces concatenate to text().
#pragma once

#include <string>
#include <vector>

#include "registry/auto_tokenizer.h"

namespace tfx::serve {

class ChoiceText {
  public:
    ChoiceText(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
        : streamer_(tokenizer, /*skip_special_tokens=*/true), stops_(std::move(stop_strings)) {}

    // The new text this token makes safe to send (may be empty). After it, stopped() tells
    // whether a stop string appeared (the text ends before it).
    std::string put(int32_t token);
    // The rest: what was held back (the choice ended without a stop string).
    std::string end();
    bool stopped() const { return stopped_; }
    const std::string& text() const { return sent_; }

  private:
    // Sends what of pending_ cannot begin a stop string.
    std::string release(bool all);

    TextStreamer streamer_;
    std::vector<std::string> stops_;
    std::string pending_;  // decoded, not yet sent
    std::string sent_;
    bool stopped_ = false;
};

}  // namespace tfx::serve
