#!/usr/bin/env bash
# The main job from a fresh Debian 12 machine (quick start command 1): install dependencies,
# build, then start GLaMM Studio on a sample scene with the bundled GLaMM-Shapes model. Without a
# display, run the CLI on the same image and write its output to out/ instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${GLAMM_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
GLAMM_TARGETS="glamm glamm-studio" "$root/scripts/build.sh" -DGLAMM_BUILD_UI=ON >/dev/null
# The bundled model (resources/models/glamm-shapes, see its README.md); the vision tower is found
# through its config.json. A scene it never saw in training:
model="$root/resources/models/glamm-shapes/glamm"
image="$root/resources/samples/scene.png"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$build/bin/glamm-studio" --model "$model" --image "$image" "$@"
fi
out="$root/out"
mkdir -p "$out"
echo "No display: running the CLI on $image; results go to $out/"
"$build/bin/glamm" inspect "$model" | tee "$out/inspect.txt"
"$build/bin/glamm" gcg --model "$model" --image "$image" --out "$out" --timings "$@"
echo "Wrote $out/"
