#!/usr/bin/env bash
# Interop suite with real SIP clients (crates/confab/tests/interop_clients.rs, ignored in a plain
# `cargo test`) against a running `confab serve` on 127.0.0.1:
#   - baresip (Debian package baresip-core), headless, driven through its ctrl_tcp JSON port,
#     registers with its password and receives a MESSAGE;
#   - PJSIP's Python binding (PyPI pjsua2-python, a binary wheel) registers two accounts that
#     send and receive MESSAGEs (crates/confab/tests/interop/pjsua2_im.py), and publish and
#     watch presence (crates/confab/tests/interop/pjsua2_presence.py);
#   - JsSIP (npm jssip) under Node with the ws package, over the WebSocket transport: REGISTER,
#     MESSAGE, PUBLISH and SUBSCRIBE/NOTIFY for presence (crates/confab/tests/interop/jssip/).
# Installs baresip, and Node with npm, with apt-get when they are missing (root, or sudo, needed
# then; a Node already on the machine is used as it is), JsSIP and ws with `npm ci` from the
# committed lock file under target/ (or $JSSIP_DIR), and pjsua2-python into a virtual
# environment under target/ (or $INTEROP_VENV). Starts nothing itself; the tests
# start confab serve and the clients, and every wait in them is bounded. The whole run is bounded
# by INTEROP_TIMEOUT seconds (default 900).
#
#   scripts/interop-clients.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Installs Debian packages when a program is missing (root, or sudo, needed then).
install_packages() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "interop-clients: missing; install as root: apt-get install $*" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    echo "interop-clients: installing $*"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@"
}

if ! command -v baresip >/dev/null 2>&1; then
    install_packages baresip-core
fi
baresip -h 2>&1 | head -n 1 || true
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    install_packages nodejs npm
fi
echo "node $(node --version), npm $(npm --version 2>/dev/null)"

# JsSIP and ws, at the versions of the committed lock file, under the target directory; installed
# again whenever that lock file changes (installed.lock is the copy the last `npm ci` used).
jssip_src=crates/confab/tests/interop/jssip
jssip_dir="${JSSIP_DIR:-${CARGO_TARGET_DIR:-$root/target}/interop-jssip}"
mkdir -p "$jssip_dir"
if ! cmp -s "$jssip_src/package-lock.json" "$jssip_dir/installed.lock" \
    || ! (cd "$jssip_dir" && node -e 'require("jssip"); require("ws")') >/dev/null 2>&1; then
    echo "interop-clients: installing JsSIP and ws into $jssip_dir"
    rm -f "$jssip_dir/installed.lock"
    cp "$jssip_src/package.json" "$jssip_src/package-lock.json" "$jssip_dir/"
    (cd "$jssip_dir" && timeout 300 npm ci --no-audit --no-fund)
    cp "$jssip_src/package-lock.json" "$jssip_dir/installed.lock"
fi
(cd "$jssip_dir" && node -p '"jssip " + require("jssip/package.json").version + ", ws " + require("ws/package.json").version')
export JSSIP_DIR="$jssip_dir"

python="${PYTHON:-python3}"
venv="${INTEROP_VENV:-${CARGO_TARGET_DIR:-$root/target}/interop-venv}"
if ! "$venv/bin/python" -c 'import pjsua2' >/dev/null 2>&1; then
    echo "interop-clients: installing pjsua2-python into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
        'pjsua2-python==2.15.1.post1'
fi
"$venv/bin/python" -c 'import sys, importlib.metadata as m, pjsua2; print("pjsua2-python", m.version("pjsua2-python"), "on python", sys.version.split()[0])'

export PJSUA2_PYTHON="$venv/bin/python"
timeout --kill-after=30 "${INTEROP_TIMEOUT:-900}" \
    cargo test -p confab --test interop_clients -- --ignored --test-threads=1
