#!/usr/bin/env bash
# The main job from a fresh Debian 12 machine (quick start command 1): install dependencies,
# build, then start GLaMM Studio on a sample image. Without a display, run the CLI on the same
# image with the bundled model and write its output to out/ instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${GLAMM_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" -DGLAMM_BUILD_TESTS=OFF >/dev/null
model="$root/tests/data/golden/tiny/glamm"
clip="$root/tests/data/golden/tiny/clip"
image="$root/resources/samples/shapes.png"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$build/bin/glamm-studio" --image "$image" "$@"
fi
out="$root/out"
mkdir -p "$out"
echo "No display: running the CLI on $image; results go to $out/"
"$build/bin/glamm" inspect "$model" --vision-tower "$clip" | tee "$out/inspect.txt"
if "$build/bin/glamm" --help | grep -q '^  gcg '; then
  "$build/bin/glamm" gcg --model "$model" --vision-tower "$clip" --image "$image" --out "$out" "$@"
fi
echo "Wrote $out/"
