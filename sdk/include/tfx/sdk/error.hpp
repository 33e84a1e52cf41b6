// Errors on the plugin side of the boundary: plugin code throws tfx::sdk::Error (or any
// std::exception); guard() turns it into a status code and a message in the caller's
// tfx_error, so no exception ever crosses the C ABI.
#pragma once

#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "tfx/abi.h"

namespace tfx::sdk {

class Error : public std::runtime_error {
  public:
    Error(int32_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
    int32_t code() const noexcept { return code_; }

  private:
    int32_t code_;
};

inline void fill_error(tfx_error* error, int32_t code, const char* message) noexcept {
    if (error == nullptr) return;
    error->struct_size = sizeof(tfx_error);
    error->code = code;
    std::snprintf(error->message, sizeof(error->message), "%s", message);
}

// Runs body; maps exceptions to status codes. Use at every C entry point of a plugin.
template <class Body>
int32_t guard(tfx_error* error, Body&& body) noexcept {
    try {
        std::forward<Body>(body)();
        return TFX_OK;
    } catch (const Error& e) {
        fill_error(error, e.code(), e.what());
        return e.code();
    } catch (const std::bad_alloc&) {
        fill_error(error, TFX_ERR_OUT_OF_MEMORY, "out of memory");
        return TFX_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        fill_error(error, TFX_ERR_INTERNAL, e.what());
        return TFX_ERR_INTERNAL;
    } catch (...) {
        fill_error(error, TFX_ERR_INTERNAL, "unknown exception");
        return TFX_ERR_INTERNAL;
    }
}

// Turns the status of a C call into an exception carrying the callee's message.
inline void check(int32_t status, const tfx_error& error) {
    if (status != TFX_OK) {
        throw Error(status, error.message[0] != '\0' ? error.message : "call failed");
    }
}

inline tfx_error empty_error() noexcept {
    tfx_error e{};
    e.struct_size = sizeof(tfx_error);
    return e;
}

}  // namespace tfx::sdk
