#!/usr/bin/env bash
# Interop suite with SIPVicious (PyPI `sipvicious`): svwar enumeration and svcrack password
# guessing against a running `confab serve` on 127.0.0.1 (crates/confab/tests/interop_sipvicious.rs,
# ignored in a plain `cargo test`). Installs sipvicious into a virtualenv under the cargo target
# directory (python3 with its venv module needed) and runs the tests with SIPVICIOUS_BIN set.
# Takes about two minutes: svcrack is paced to guess for about one.
#
#   scripts/interop-sipvicious.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

SIPVICIOUS_VERSION="${SIPVICIOUS_VERSION:-0.3.8}"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/interop-sipvicious-venv"

if [[ ! -x "$venv/bin/sipvicious_svcrack" ]]; then
    echo "interop-sipvicious: installing sipvicious $SIPVICIOUS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "sipvicious==$SIPVICIOUS_VERSION"
fi
"$venv/bin/sipvicious_svwar" --version 2>&1 | head -n 1 || true

SIPVICIOUS_BIN="$venv/bin" cargo test -p confab --test interop_sipvicious -- --ignored --nocapture
