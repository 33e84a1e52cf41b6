// The one exception type the tokenizer engine throws (bad tokenizer.json, invalid UTF-8 ...).
#pragma once

#include <stdexcept>

namespace tfx::tok {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace tfx::tok
