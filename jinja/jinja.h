// A Jinja2 template engine that renders Hugging Face chat templates exactly as Python
// transformers does (Jinja2 3.1, ImmutableSandboxedEnvironment, trim_blocks and lstrip_blocks,
// loop controls, transformers' tojson / raise_exception / strftime_now).
//
//   auto tmpl = tfx::jinja::Template::parse(source);       // throws Error{syntax}
//   std::string text = tmpl.render(context, options);      // throws Error{raised|runtime}
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jinja/error.h"

namespace tfx::jinja {

namespace ast {
struct Template;
}

// A naive local date and time, as Python's datetime.now() gives it.
struct DateTime {
    int year = 1970, month = 1, day = 1;
    int hour = 0, minute = 0, second = 0;

    static DateTime now_local();
    // "YYYY-MM-DD HH:MM:SS"; nullopt when malformed.
    static std::optional<DateTime> parse(std::string_view text);
};

struct RenderOptions {
    // What strftime_now() sees; unset means the system's local time.
    std::optional<DateTime> now;
    // Bounds that stop runaway templates; generous for real chat templates.
    std::size_t max_output_bytes = std::size_t{64} << 20;
    std::uint64_t max_loop_iterations = 10'000'000;
    int max_call_depth = 100;  // nested macro calls (and recursive loop calls)
    // Bytes of strings and containers the render may build or scan in all (so that neither
    // time nor memory can run away).
    std::size_t max_work_bytes = std::size_t{2} << 30;
};

class Template {
  public:
    // Throws Error (ErrorKind::syntax, with line and column) when the source does not parse.
    static Template parse(std::string_view source);

    // context: a JSON object whose keys become template variables (key order is kept, which
    // tojson output depends on). The globals range, dict, namespace, cycler, joiner,
    // raise_exception and strftime_now are always available.
    std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  private:
    explicit Template(std::shared_ptr<const ast::Template> tree) : tree_(std::move(tree)) {}
    std::shared_ptr<const ast::Template> tree_;
};

}  // namespace tfx::jinja
