// The message a call throws, or "" when it does not throw: for tests of error wording.
#pragma once

#include <exception>
#include <functional>
#include <string>

namespace tfx::test {

inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace tfx::test
