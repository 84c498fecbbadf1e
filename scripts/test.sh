#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install dependencies, build, run ctest.
# Quick start command 2 (README); .ci/run calls it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${GLAMM_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
start=$(date +%s)
"$root/scripts/build.sh" -DGLAMM_BUILD_UI=ON -DGLAMM_BUILD_TESTS=ON
echo "build: $(( $(date +%s) - start )) s"
export QT_QPA_PLATFORM=offscreen
cd "$build"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
