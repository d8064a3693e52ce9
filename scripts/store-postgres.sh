#!/usr/bin/env bash
# The management store suite on PostgreSQL (crates/confab-store/tests/postgres.rs), then a pool
# of two `confab serve` front-ends sharing one PostgreSQL store, one of them killed
# (crates/confab/tests/pool_members.rs); both are ignored in a plain `cargo test`. Installs
# PostgreSQL from Debian's packages when it is missing (root, or sudo, needed then), starts a
# throwaway cluster on 127.0.0.1 in a temporary directory, creates a user and databases, runs
# the tests against it, and removes the cluster on exit.
#
#   scripts/store-postgres.sh [extra arguments for the test binary, e.g. a test name]
#
# CONFAB_PG_PORT picks the port (default: the first free one from 55432).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    as_root=(sudo)
fi

# The newest installed server's bin directory (Debian keeps each major version apart).
pg_bindir() {
    local dir newest=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb ]] || continue
        if [[ -z $newest ]] || [[ $(printf '%s\n%s\n' "$newest" "$dir" | sort -V | tail -n 1) == "$dir" ]]; then
            newest=$dir
        fi
    done
    [[ -n $newest ]] && printf '%s\n' "$newest"
}

if ! pg_bindir >/dev/null; then
    echo "store-postgres: installing postgresql"
    if [[ ${#as_root[@]} -gt 0 ]] && ! command -v sudo >/dev/null 2>&1; then
        echo "store-postgres: PostgreSQL is missing; install it as root: apt-get install postgresql" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update
    "${as_root[@]}" apt-get install -y --no-install-recommends postgresql
fi
bin="$(pg_bindir)"
"$bin/postgres" --version

# PostgreSQL refuses to run as root: the cluster belongs to the postgres user then.
run_pg=()
owner="$(id -un)"
if [[ $(id -u) -eq 0 ]]; then
    run_pg=(runuser -u postgres --)
    owner=postgres
fi

port="${CONFAB_PG_PORT:-}"
if [[ -z $port ]]; then
    port=55432
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
fi

work="$(mktemp -d /tmp/confab-pg.XXXXXX)"
chown "$owner" "$work"
chmod 700 "$work"
cleanup() {
    if [[ -f $work/data/postmaster.pid ]]; then
        "${run_pg[@]}" "$bin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Passwords for this run only: the superuser's, and the test user's (exercised by the URL).
super_pw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
user_pw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$super_pw" >"$work/pwfile"
chown "$owner" "$work/pwfile"

"${run_pg[@]}" "$bin/initdb" -D "$work/data" -U postgres --pwfile="$work/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >"$work/initdb.log" \
    || { cat "$work/initdb.log" >&2; exit 1; }
# Each test opens a database and a pool of its own: allow plenty of connections. fsync off:
# the cluster is thrown away, and the suite measures the store, not the disk.
"${run_pg[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -h 127.0.0.1 -p $port -c max_connections=300 -c fsync=off" start >/dev/null \
    || { cat "$work/server.log" >&2; exit 1; }

"${run_pg[@]}" "$bin/psql" -h "$work" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE confab LOGIN CREATEDB PASSWORD '$user_pw'" \
    -c "CREATE DATABASE confab OWNER confab"

export CONFAB_TEST_POSTGRES_URL="postgres://confab:$user_pw@127.0.0.1:$port/confab"
echo "store-postgres: PostgreSQL on 127.0.0.1:$port, running the store suite"
cargo test -p confab-store --test postgres -- --ignored "$@"
# A pool of two front-ends on this server: one killed, the other takes its users over. Its
# own database, so that the suite's databases and this test never meet.
"${run_pg[@]}" "$bin/psql" -h "$work" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE DATABASE confab_pool OWNER confab"
echo "store-postgres: a pool of two front-ends on PostgreSQL"
CONFAB_TEST_POSTGRES_URL="postgres://confab:$user_pw@127.0.0.1:$port/confab_pool" \
    cargo test -p confab --test pool_members -- --ignored --nocapture "$@"
