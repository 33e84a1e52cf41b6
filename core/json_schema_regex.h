// JSON Schema -> a regular expression (regex_automaton.h) whose matches are JSON texts valid
// against the schema, for constrained decoding (as Outlines compiles schemas).
//
// Supported: type (one or a list), enum, const, object properties (all emitted, in the
// schema's order), array items / prefixItems with minItems / maxItems, string minLength /
// maxLength / pattern / format (date, time, date-time, uuid), anyOf / oneOf, $ref into
// $defs / definitions (not recursive), and {} / true for any value. Numbers carry at most 16
// digits before and after the point. One optional space may follow ':' and ','. Keywords that
// would need more (allOf, not, if/then, minimum, multipleOf, uniqueItems, recursive $ref,
// patternProperties, ...) are refused with their JSON pointer, never silently dropped.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tfx {

std::string json_schema_regex(const nlohmann::ordered_json& schema);

// Any JSON object (OpenAI's response_format {"type": "json_object"}), nested at most
// `max_depth` containers deep.
std::string json_object_regex(int max_depth = 3);

}  // namespace tfx
