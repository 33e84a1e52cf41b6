#include "jinja/jinja.h"

#include <new>

#include "jinja/ast.h"
#include "jinja/parser.h"
#include "jinja/renderer.h"

namespace tfx::jinja {

Template Template::parse(std::string_view source) {
    try {
        return Template(std::make_shared<const ast::Template>(parse_template(source)));
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw Error(ErrorKind::syntax, "out of memory while parsing the template");
    }
}

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
    try {
        return render_template(*tree_, context, options);
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw Error(ErrorKind::runtime, "out of memory while rendering the template");
    }
}

}  // namespace tfx::jinja
