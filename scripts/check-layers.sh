#!/usr/bin/env bash
# Layers point one way: apps -> registry -> core -> sdk, and plugins -> sdk only. Fails,
# naming the file and line, when a lower layer includes a higher one.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() {  # forbid DIR PATTERN WHY
    local hits
    hits=$(grep -rnE "#include \"($2)" "$1" --include='*.h' --include='*.hpp' --include='*.cpp' || true)
    if [ -n "$hits" ]; then
        echo "layer violation: $1 $3:" >&2
        echo "$hits" >&2
        status=1
    fi
}
forbid core 'registry/|apps/|jinja/|plugins/' "is the kernel and must not include registry, apps, jinja or plugins"
forbid jinja 'core/|registry/|apps/|plugins/' "is a library beside the kernel"
forbid registry 'apps/|plugins/' "must not include apps or plugins"
forbid sdk 'core/|registry/|apps/|jinja/|plugins/' "is the plugin contract and includes only itself"
forbid plugins 'core/|registry/|apps/|jinja/' "speak only the SDK"
forbid python 'core/|registry/|apps/|jinja/|plugins/' "binds the C host API (tfx/host_api.h) only"
[ "$status" -eq 0 ] && echo "layers: ok"
exit "$status"
