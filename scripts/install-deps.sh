#!/usr/bin/env bash
# Installs the Debian 12 packages tfx builds and tests with (only those not yet installed).
set -euo pipefail
packages=(
    cmake ninja-build g++ pkg-config python3
    clang libclang-rt-14-dev            # fuzz targets (libFuzzer + ASan)
    libboost-dev                        # Boost.DLL (header-only), Asio, Beast
    nlohmann-json3-dev libcli11-dev
    libdnnl-dev                         # bench_gemm's reference matmuls
    libhwy-dev                          # CPU backend kernels: portable SIMD, runtime ISA dispatch
    libtorch-dev                        # the torch backend (plugins/backends/torch)
    libopenmpi-dev openmpi-bin          # tensor parallelism (--tp) across MPI ranks, mpirun for its tests
    libopenblas0-openmp                 # its matmuls: Debian's default libblas is the reference one
                                        # (4 GFLOP/s); OpenMP's variant shares ATen's thread pool
    libcurl4-openssl-dev                # Hub client
    libpng-dev libjpeg-dev              # image processors: PNG and JPEG decoding
    libsndfile1-dev libfftw3-dev        # audio feature extractors: WAV/FLAC reading, the STFT
    libonig-dev libutf8proc-dev         # tokenizers: regexes and Unicode normalization
    libgtest-dev libgmock-dev libbenchmark-dev
    clang-format                        # scripts/format.sh --check (CI)
    pybind11-dev python3-dev            # the Python package (python/)
    python3-pytest python3-numpy        # its tests (tests/python)
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The official OpenAI client from the npm registry, for tests/serve/node (pinned by its
# package-lock.json). Node.js itself is the machine's.
if command -v npm >/dev/null; then
    npm ci --prefix "$(dirname "$0")/../tests/serve/node" --no-audit --no-fund --loglevel=error
else
    echo "warning: npm not found; the openai client test (serve.openai_client) will be skipped" >&2
fi
