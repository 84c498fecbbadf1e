#!/usr/bin/env bash
# Configures and builds GLaMM Studio into build/ (or $GLAMM_BUILD_DIR). Extra args go to cmake;
# GLAMM_TARGETS="a b" builds only those targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${GLAMM_BUILD_DIR:-$root/build}
jobs=${GLAMM_JOBS:-$(nproc)}
# Two cores and ~1.2 GB per LibTorch translation unit: never more jobs than memory allows.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1500000 ))
[ "$mem_jobs" -ge 1 ] && [ "$mem_jobs" -lt "$jobs" ] && jobs=$mem_jobs
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
cmake -S "$root" -B "$build" -G Ninja "$@"
targets=()
for t in ${GLAMM_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$jobs" "${targets[@]}"
