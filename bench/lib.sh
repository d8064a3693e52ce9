# shellcheck shell=bash disable=SC2034,SC2154
# What bench/compare.sh and bench/presence.sh share, sourced by both after they have set:
#
#   prog          the name in their messages          root   the repository
#   bin           the directory of the binaries (make_work below sets work, their work directory)
#   DOMAIN        the SIP domain of the users         SERVER_CPU  the CPU the server runs on
#   provisioned   how many users (start_server waits longer for more)
#
# and defined start_server SERVER (it sets $port and starts the server with `launch`).
#
#   say / die                 messages (die exits 1)
#   need_tools [PACKAGE...]   installs Kamailio, its SQLite modules, sqlite3 and the packages
#                             named (Debian names) with apt-get when missing
#   launch LOG CMD...         the server in a session of its own on SERVER_CPU; its process
#                             group is $server_pgid
#   stop_server               TERM to the group, then KILL after 10 s
#   settle [MAX_S]            waits until the server is idle (under 5 % of a core)
#   ports_free PORT...        dies when something answers SIP on one of the ports
#   provision_kamailio DB N [SQL_FILE...]
#                             a new SQLite database with Kamailio's standard and auth_db
#                             schemas, the SQL files given, and users 1..N (pre-computed HA1)
#   provision_confab N        a new Confab data directory ($work/confab-data) with users 1..N
#   make_work NAME            creates the work directory /tmp/NAME.XXXXXX as $work (and
#                             $raw, its run log), removed at exit with the server stopped
#                             (KEEP_WORK=1 keeps it)

say() { printf '%s: %s\n' "$prog" "$*"; }
die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

schema_dir=/usr/share/kamailio/db_sqlite

need_tools() {
    local need=() tool sudo=()
    command -v kamailio >/dev/null 2>&1 || [[ -x /usr/sbin/kamailio ]] || need+=(kamailio)
    ls /usr/lib/*/kamailio/modules/db_sqlite.so >/dev/null 2>&1 || need+=(kamailio-sqlite-modules)
    command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
    need+=("$@")
    for tool in python3 taskset setsid; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is missing; install it (python3, util-linux)"
    done
    if ((${#need[@]})); then
        say "installing ${need[*]}"
        if [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null 2>&1 || die "missing ${need[*]}; install as root: apt-get install ${need[*]}"
            sudo=(sudo)
        fi
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y --no-install-recommends "${need[@]}"
    fi
    kamailio_bin="$(command -v kamailio || echo /usr/sbin/kamailio)"
    [[ -f $schema_dir/auth_db-create.sql ]] || die "no $schema_dir/auth_db-create.sql: is kamailio-sqlite-modules installed?"
    [[ $(nproc) -ge 2 ]] || say "warning: $(nproc) CPU(s): server and generator cannot be pinned apart"
}

server_pgid=""

stop_server() {
    [[ -n $server_pgid ]] || return 0
    kill -TERM -- "-$server_pgid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 -- "-$server_pgid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$server_pgid" 2>/dev/null || true
    server_pgid=""
}

# Starts a process in a session (and process group) of its own, pinned to the server's CPU;
# the group is the server, so that CPU and memory are read over all its processes.
launch() {
    local log="$1"
    shift
    setsid taskset -c "$SERVER_CPU" "$@" >"$log" 2>&1 </dev/null &
    local pid=$! pgid=""
    server_pgid=$pid
    # Until setsid has run, the child is still in this script's process group.
    for _ in $(seq 100); do
        pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
        [[ $pgid == "$pid" || -z $pgid ]] && break
        sleep 0.02
    done
    if [[ -z $pgid ]]; then
        server_pgid=""
        return 1
    fi
    if [[ $pgid != "$pid" ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        die "the server (pid $pid) did not get a process group of its own"
    fi
}

# settle [MAX_S]: waits (at most MAX_S seconds, default 15) until the server uses under 5 % of a
# core over half a second: its write-behind, timers and transactions settled after a run.
# Sets $settled_s to the seconds it waited.
settled_s=0
settle() {
    local max="${1:-15}" a b t0
    t0=$(date +%s.%N)
    for _ in $(seq $((max * 2))); do
        a=$(python3 "$root/bench/procstat.py" cpu "$server_pgid")
        sleep 0.5
        b=$(python3 "$root/bench/procstat.py" cpu "$server_pgid")
        if python3 -c "import sys; sys.exit(0 if $b - $a < 0.025 else 1)"; then
            break
        fi
    done
    settled_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
    return 0
}

# Nothing of ours may answer there yet: a server left over would be measured instead.
ports_free() {
    local p
    for p in "$@"; do
        if python3 "$root/bench/procstat.py" ping "$p" 0.5; then
            die "something answers SIP on 127.0.0.1:$p already; stop it, or choose other ports with CONFAB_PORT and KAMAILIO_PORT"
        fi
    done
}

# Sets $kamailio_provision_s.
provision_kamailio() {
    local db="$1" n="$2" t0
    shift 2
    t0=$(date +%s.%N)
    python3 - "$n" "$DOMAIN" >"$work/kamailio.sql" <<'EOF'
import hashlib, sys
n, domain = int(sys.argv[1]), sys.argv[2]
out = ["BEGIN;"]
for i in range(1, n + 1):
    user = f"user{i}"
    ha1 = hashlib.md5(f"{user}:{domain}:pw-{i}".encode()).hexdigest()
    out.append(f"INSERT INTO subscriber (username, domain, ha1) VALUES ('{user}', '{domain}', '{ha1}');")
out.append("COMMIT;")
print("\n".join(out))
EOF
    cat "$schema_dir/standard-create.sql" "$schema_dir/auth_db-create.sql" "$@" "$work/kamailio.sql" |
        sqlite3 "$db"
    rm -f "$work/kamailio.sql"
    kamailio_provision_s=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
    say "Kamailio: $(sqlite3 "$db" 'SELECT count(*) FROM subscriber') subscribers in SQLite in ${kamailio_provision_s} s"
}

# A first start creates the deployment (domain $DOMAIN, pool default); then the users are
# imported into its store. Sets $confab_provision_s.
provision_confab() {
    local n="$1" t0
    start_server confab || die "confab serve did not start on a new data directory"
    stop_server
    python3 -c "
import sys
print('address,password')
print('\n'.join(f'user{i}@$DOMAIN,pw-{i}' for i in range(1, $n + 1)))
" >"$work/users.csv"
    t0=$(date +%s.%N)
    "$bin/confab" user import "$work/users.csv" --data-dir "$work/confab-data" --json \
        >"$work/import.json" 2>"$work/import.err" || {
        cat "$work/import.err" >&2
        die "confab user import failed"
    }
    confab_provision_s=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
    rm -f "$work/users.csv"
    say "Confab: $(cat "$work/import.json") in ${confab_provision_s} s"
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup_work() {
    stop_server
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        say "kept $work"
    else
        rm -rf "$work"
    fi
}

make_work() {
    work="$(mktemp -d "/tmp/$1.XXXXXX")"
    raw="$work/raw.jsonl"
    trap cleanup_work EXIT
    trap 'exit 130' INT TERM HUP PIPE
}
