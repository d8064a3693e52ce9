#!/usr/bin/env bash
# The coexistence and migration suite with a real Kamailio (crates/confab/tests/migrate_kamailio.rs,
# ignored in a plain `cargo test`): Kamailio from Debian's packages on 127.0.0.1 with a SQLite
# subscriber table of 200 users and the routing block of `confab migrate legacy-config
# kamailio`, migrated to two Confab pools phase by phase. Installs kamailio and
# kamailio-sqlite-modules with apt-get when they are missing (root, or sudo, needed then).
#
#   scripts/migrate-kamailio.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

kamailio_bin() {
    command -v kamailio 2>/dev/null || { [[ -x /usr/sbin/kamailio ]] && echo /usr/sbin/kamailio; }
}

# kamailio-sqlite-modules brings db_sqlite and the SQLite schema the suite creates its
# database from.
if ! kamailio_bin >/dev/null || [[ ! -f /usr/share/kamailio/db_sqlite/auth_db-create.sql ]]; then
    echo "migrate-kamailio: installing kamailio and kamailio-sqlite-modules"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "migrate-kamailio: Kamailio is missing; install it as root: apt-get install kamailio kamailio-sqlite-modules" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends kamailio kamailio-sqlite-modules
fi
# The Debian package starts a system Kamailio on port 5060; the suite uses ports of its own.
KAMAILIO="$(kamailio_bin)"
export KAMAILIO
"$KAMAILIO" -v 2>&1 | sed -n 1p

cargo test -p confab --test migrate_kamailio -- --ignored --nocapture
