#!/usr/bin/env bash
# clang-format over the tracked C and C++ sources (the frozen ABI 1.0 fixture aside: it is
# kept byte for byte as released). `--check` reports files that differ and fails; without
# it the files are rewritten in place.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.cpp' '*.h' '*.hpp' '*.cu' ':!:tests/abi/v1.0/**')
if [ "${1:-}" = "--check" ]; then
    clang-format --dry-run --Werror "${files[@]}"
    echo "format: ok (${#files[@]} files)"
else
    clang-format -i "${files[@]}"
fi
