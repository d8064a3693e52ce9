#!/usr/bin/env bash
# Interop suite with a real SIP client: sipsak (Debian package) sends OPTIONS to a running
# `confab serve` over UDP and over TCP (crates/confab/tests/interop_sipsak.rs, ignored in a plain
# `cargo test`). Installs sipsak with apt-get when it is missing (root, or sudo, needed then).
#
#   scripts/interop-sipsak.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v sipsak >/dev/null 2>&1; then
    echo "interop-sipsak: installing sipsak"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "interop-sipsak: sipsak is missing; install it as root: apt-get install sipsak" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends sipsak
fi
sipsak -V 2>&1 | head -n 1 || true

cargo test -p confab --test interop_sipsak -- --ignored
