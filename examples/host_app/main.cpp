// The smallest useful host: load a model folder (weights, tokenizer) and continue a prompt.
//   host_app MODEL_DIR "Once upon a time" [max_new_tokens]
#include <cstdlib>
#include <iostream>

#include "registry/pipelines.h"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: host_app MODEL_DIR PROMPT [MAX_NEW_TOKENS]\n";
        return 2;
    }
    try {
        tfx::TextGenerationPipeline generate(argv[1], tfx::LoadOptions{});
        tfx::GenerationConfig config;  // greedy
        config.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 32;
        std::cout << argv[2] << generate(argv[2], config) << '\n';
        std::cerr << "ran " << generate.session().architecture() << " via " << generate.session().plugin_summary()
                  << '\n';
    } catch (const std::exception& e) {
        std::cerr << "host_app: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
