#!/usr/bin/env bash
# Provision nasm, which assembles libjpeg-turbo's SIMD code when the worker's JPEG decoder
# (mozjpeg-sys) is built: Debian's `nasm` package, installed with apt-get when missing. Without it
# the decoder builds from its portable C: the same pixels, decoding about 1.6x slower. Never fails
# the caller: it only says when it could not install nasm.
set -uo pipefail
say() { echo "[setup-nasm] $*" >&2; }
command -v nasm >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
    say "no nasm and no apt-get to install it: JPEG decoding will be built without SIMD"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
say "installing Debian's nasm for libjpeg-turbo's SIMD code (first time only)"
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq nasm >&2 \
    || { $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq nasm >&2; } \
    || say "could not install nasm: JPEG decoding will be built without SIMD"
exit 0
