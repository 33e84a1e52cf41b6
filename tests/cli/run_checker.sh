#!/usr/bin/env bash
# Runs one of the shared command-line checkers ($TFX_TEST_DATA/tools/CHECKER.py) against the
# built tfx; paths after the checker name are relative to $TFX_TEST_DATA (options and numbers
# pass as they are, and so does the name after --case). Exit 77 (skipped, with the reason)
# when the data is absent.
set -euo pipefail
tfx=$1 checker=$2
shift 2
if [ -z "${TFX_TEST_DATA:-}" ] || [ ! -f "$TFX_TEST_DATA/tools/$checker" ]; then
    echo "skipped: TFX_TEST_DATA does not point at the shared data with tools/$checker"
    exit 77
fi
args=()
previous=
for a in "$@"; do
    if [ "$previous" = --case ]; then
        args+=("$a")
    else
        case "$a" in --* | [0-9]*) args+=("$a") ;; *) args+=("$TFX_TEST_DATA/$a") ;; esac
    fi
    previous=$a
done
exec python3 "$TFX_TEST_DATA/tools/$checker" "$tfx" "${args[@]}"
