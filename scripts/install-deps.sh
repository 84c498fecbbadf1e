#!/usr/bin/env bash
# Installs exactly what building and testing GLaMM Studio needs, from Debian 12 packages.
# Idempotent: does nothing (and needs no network) when everything is already installed.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git
  # engine: LibTorch (CPU), OpenBLAS with OpenMP (LibTorch falls back to a 50x slower reference
  # BLAS without it), sentencepiece, JSON, OpenCV image codecs
  libtorch-dev libopenblas0-openmp libsentencepiece-dev nlohmann-json3-dev
  libopencv-dev
  # desktop app
  qt6-base-dev qt6-base-dev-tools
  # tests: GoogleTest, a display server for screenshots, Python + torch for test-data scripts
  libgtest-dev xvfb xauth python3-torch python3-numpy python3-pil
  # fuzzers and sanitizers
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
