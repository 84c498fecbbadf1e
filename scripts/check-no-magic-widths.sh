#!/usr/bin/env bash
# Fails if engine/ code hard-codes one of GLaMM-7B's widths (1024, 4096, 256, 1280, 32007, 575,
# 576) instead of reading it from the config. Allowed: comments, the documented release defaults
# in core/config.h, and named constants (`constexpr ... kName = N;` with a comment).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hits=$(grep -rnwE '1024|4096|256|1280|32007|575|576' "$root/engine" --include='*.cpp' --include='*.h' \
  | grep -v '/engine/core/config.h:' \
  | grep -vE '^[^:]+:[0-9]+:\s*//' \
  | sed -E 's#//.*$##' | grep -wE '1024|4096|256|1280|32007|575|576' \
  | grep -vE 'constexpr[^=]*\bk[A-Z][A-Za-z]*\s*=\s*[0-9]+;' || true)
if [ -n "$hits" ]; then
  echo "engine/ hard-codes a model width; derive it from the config:"
  echo "$hits"
  exit 1
fi
echo "engine/: no hard-coded model widths"
