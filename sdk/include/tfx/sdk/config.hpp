// Typed access to config.json-style files with errors that name the file and the field,
// shared by the host and plugin authors. Needs nlohmann_json (header-only).
#pragma once

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "tfx/sdk/error.hpp"

namespace tfx::sdk {

class Config {
  public:
    Config() = default;
    Config(nlohmann::json json, std::string file) : json_(std::move(json)), file_(std::move(file)) {
        if (!json_.is_object()) fail("", "expected a JSON object at the top level");
    }
    // Parses text; a syntax error names the file and the byte position.
    static Config parse(std::string_view text, std::string file) {
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded()) {
            // Parse again with exceptions on, only to get the position for the message.
            try {
                nlohmann::json unreachable = nlohmann::json::parse(text);
                (void)unreachable;
            } catch (const nlohmann::json::exception& e) {
                throw Error(TFX_ERR_FORMAT, file + ": not valid JSON: " + e.what());
            }
        }
        return Config(std::move(j), std::move(file));
    }

    const nlohmann::json& json() const { return json_; }
    const std::string& file() const { return file_; }

    // Present and not null.
    bool has(std::string_view key) const {
        auto it = json_.find(key);
        return it != json_.end() && !it->is_null();
    }

    template <class T>
    T get(std::string_view key) const {
        auto it = json_.find(key);
        if (it == json_.end() || it->is_null()) fail(key, "required field is missing");
        return convert<T>(*it, key);
    }

    template <class T>
    T get_or(std::string_view key, T fallback) const {
        return has(key) ? get<T>(key) : fallback;
    }

    // get_or for a number that only makes sense above zero (an epsilon, a rope base, a size):
    // a value that is not, or is not finite, fails naming the field (the fallback is checked too).
    template <class T>
    T get_positive(std::string_view key, T fallback) const {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
        const T value = get_or<T>(key, fallback);
        bool ok = value > T(0);
        if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(value);
        if (!ok) {
            std::ostringstream shown;
            if (has(key)) {
                shown << json_.find(key)->dump();
            } else {
                shown << value << " (the default)";
            }
            fail(key, "must be positive, got " + shown.str());
        }
        return value;
    }

    // A nested object as its own Config ("rope_scaling" and the like).
    Config child(std::string_view key) const {
        const nlohmann::json& j = json_.at(std::string(key));
        if (!j.is_object()) fail(key, "expected an object");
        return Config(j, file_ + ": " + std::string(key));
    }

    [[noreturn]] void fail(std::string_view key, const std::string& what) const {
        std::string where = key.empty() ? file_ : file_ + ": field '" + std::string(key) + "'";
        throw Error(TFX_ERR_FORMAT, where + ": " + what);
    }

  private:
    template <class T>
    T convert(const nlohmann::json& j, std::string_view key) const {
        if constexpr (std::is_same_v<T, bool>) {
            if (!j.is_boolean()) fail(key, "expected true or false, got " + j.dump());
        } else if constexpr (std::is_integral_v<T>) {
            if (!j.is_number_integer()) fail(key, "expected an integer, got " + j.dump());
            if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())
                                       : j.get<int64_t>() < std::numeric_limits<T>::min() ||
                                             j.get<int64_t>() > std::numeric_limits<T>::max()) {
                fail(key, "integer out of range: " + j.dump());
            }
        } else if constexpr (std::is_floating_point_v<T>) {
            if (!j.is_number()) fail(key, "expected a number, got " + j.dump());
        } else if constexpr (std::is_same_v<T, std::string>) {
            if (!j.is_string()) fail(key, "expected a string, got " + j.dump());
        }
        return j.get<T>();
    }

    nlohmann::json json_ = nlohmann::json::object();
    std::string file_;
};

}  // namespace tfx::sdk
