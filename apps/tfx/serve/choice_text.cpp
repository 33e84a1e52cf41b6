#include "apps/tfx/serve/choice_text.h"

#include <algorithm>

namespace tfx::serve {

std::string ChoiceText::put(int32_t token) {
    if (stopped_) return {};
    pending_ += streamer_.put(token);
    // The earliest stop string in what has not been sent (a stop string may span tokens, and
    // never lies in text already sent: that text could not begin one).
    size_t cut = std::string::npos;
    for (const std::string& stop : stops_) cut = std::min(cut, pending_.find(stop));
    if (cut != std::string::npos) {
        stopped_ = true;
        pending_.resize(cut);
        return release(true);
    }
    return release(false);
}

std::string ChoiceText::end() {
    if (!stopped_) pending_ += streamer_.end();
    return release(true);
}

std::string ChoiceText::release(bool all) {
    size_t keep = 0;
    if (!all) {
        // The longest tail of pending_ that is a proper prefix of some stop string.
        for (const std::string& stop : stops_) {
            for (size_t n = std::min(stop.size() - 1, pending_.size()); n > keep; --n) {
                if (pending_.compare(pending_.size() - n, n, stop, 0, n) == 0) {
                    keep = n;
                    break;
                }
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    sent_ += out;
    return out;
}

}  // namespace tfx::serve
