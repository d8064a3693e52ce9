#!/usr/bin/env bash
# The web console in headless Chromium (crates/confab/tests/console_browser.rs, ignored in a
# plain `cargo test`): Debian's chromium driven by playwright-core from npm
# (crates/confab/tests/browser/). Installs chromium, and Node with npm, with apt-get when they
# are missing (root, or sudo, needed then; a Node already on the machine is used as it is),
# and playwright-core with `npm ci` from the committed lock file under target/ (or
# $CONSOLE_BROWSER_DIR). The screenshots are printed into the log, base64 PNG between
# markers, and kept nowhere else. The whole run is bounded by BROWSER_TIMEOUT seconds
# (default 600).
#
#   scripts/console-browser.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

install_packages() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "console-browser: missing; install as root: apt-get install $*" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    echo "console-browser: installing $*"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@"
}

chromium_bin() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null
}
if ! chromium_bin >/dev/null; then
    install_packages chromium
fi
CHROMIUM="$(chromium_bin)"
export CHROMIUM
"$CHROMIUM" --version 2>/dev/null | sed -n 1p
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    install_packages nodejs npm
fi
echo "node $(node --version), npm $(npm --version 2>/dev/null)"

# playwright-core at the version of the committed lock file, installed again whenever that lock
# file changes (installed.lock is the copy the last `npm ci` used). It brings no browser: the
# driver launches Debian's chromium.
src=crates/confab/tests/browser
dir="${CONSOLE_BROWSER_DIR:-${CARGO_TARGET_DIR:-$root/target}/console-browser}"
mkdir -p "$dir"
if ! cmp -s "$src/package-lock.json" "$dir/installed.lock" \
    || ! (cd "$dir" && node -e 'require.resolve("playwright-core")') >/dev/null 2>&1; then
    echo "console-browser: installing playwright-core into $dir"
    rm -f "$dir/installed.lock"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund)
    cp "$src/package-lock.json" "$dir/installed.lock"
fi
CONSOLE_BROWSER_DIR="$(cd "$dir" && pwd)"
export CONSOLE_BROWSER_DIR

timeout "${BROWSER_TIMEOUT:-600}" \
    cargo test -p confab --test console_browser -- --ignored --nocapture
