#!/bin/sh
# install_deps.sh - install the Debian 12 packages Lopper builds, tests and runs with
# (python3-onnx, -torch and -torchvision only as test references: the ONNX specs
# build their fixtures with them; python3-numpy and python3-pil write the .npy files and
# image folders the data specs read back), and ONNX Runtime from npm (below).  Called by the
# Makefile before the first build, so a fresh machine needs no manual step; uses
# apt-get directly as root and sudo otherwise.  Installs only what is missing, so it
# is quick (and offline-safe) once everything is there.
set -eu

PACKAGES="build-essential pkg-config liblua5.4-dev lua5.4 libopenblas-dev zlib1g-dev
libreadline-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev libcmocka-dev lua-busted
libpng-dev libturbojpeg0-dev python3-numpy python3-pil
dataset-fashion-mnist python3-onnx python3-torch python3-torchvision"
# The fuzz harnesses (make fuzz, run briefly by make test): clang, and libFuzzer's
# runtime, which Debian ships in compiler-rt's development package.
PACKAGES="$PACKAGES clang libclang-rt-14-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# ONNX Runtime, the deploying-side reference of the ONNX specs, comes from npm
# (onnxruntime-node, pinned in tests/ort/package-lock.json; its CPU library ships inside
# the package): Node.js and npm from Debian when there are none (Debian 12's Node 18
# and npm 9 run it, as do newer ones).
if ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs"
fi
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -n "$missing" ]; then
    echo "install_deps: installing$missing" >&2
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    else
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# onnxruntime-node into tests/ort/node_modules (ignored by git), exactly as locked.
# --ignore-scripts: its install script would only fetch GPU providers, never needed.
ORT_DIR="$(dirname "$0")/../../tests/ort"
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
    echo "install_deps: npm ci in tests/ort (onnxruntime-node)" >&2
    (cd "$ORT_DIR" && npm ci --ignore-scripts --no-audit --no-fund)
fi
