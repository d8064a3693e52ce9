#!/usr/bin/env bash
# Presence: Confab beside Kamailio's presence server on this machine, the same users and the
# same load (confab-load's subscribe scenario) against each server in turn, alternating,
# every run on a freshly started server with fresh state. It reports:
#
#   * server CPU time per NOTIFY delivered: user + system time of all the server's processes
#     and threads (/proc/PID/stat over its process group), read with the server idle before
#     a run and idle again after it (its timers and transactions settled), across a run
#     that registers every user, subscribes every watcher (PRESENTITIES presentities, WATCHERS
#     watchers each watching WATCH of them: PRESENTITIES × WATCHERS·WATCH/PRESENTITIES
#     subscriptions, 20 × 500 = 10,000 by default) and then publishes at PUB_RATE PUBLISH/s
#     for PUB_SECONDS; minus the CPU of the same set-up alone (a run with --count 0 on a fresh
#     server, median of the rounds), divided by the NOTIFYs carrying the run's PUBLISHes that
#     the watchers received (`notifies`). Each PUBLISH changes the presentity's note, so every
#     watcher of it gets a NOTIFY: PUB_RATE · WATCHERS·WATCH/PRESENTITIES NOTIFYs a second
#     (10 × 500 = 5,000/s by default: at 20 and 50 PUBLISH/s Kamailio answered some PUBLISHes
#     500 and lost NOTIFYs on this 2-core machine). Medians of ROUNDS rounds;
#   * NOTIFY latency p50/p99 of those runs: from the PUBLISH's send time (carried in its note)
#     to the NOTIFY's arrival at the watcher, as confab-load measures it; PUBLISH latency too;
#     medians;
#   * memory per subscription: a fresh server, PSS summed over its processes
#     (/proc/PID/smaps_rollup, Kamailio's shared memory counted once) after every user of the
#     memory run (PRESENTITIES + MEM_WATCHERS) registered once (the register scenario), and
#     again after the subscribe scenario with --count 0 established MEM_WATCHERS·MEM_WATCH
#     subscriptions (20 × 1,000 = 20,000: 1,000 watchers on each presentity, the most
#     Confab accepts), each read once the server is idle again plus MEM_WAIT seconds (40:
#     Timer J keeps a UDP non-INVITE server transaction 32 s). The subscribe run registers
#     every user again from new ports, a second binding each: what the first registrations
#     added over the fresh server is subtracted once more. Divided by the subscriptions; RSS
#     likewise for reference; one run per server.
#
# A run passes when no operation failed, every subscription was established, every PUBLISH
# succeeded at ≥ 95 % of the offered rate and every NOTIFY expected came. It prints a table of
# medians with Confab/Kamailio ratios (lower is better everywhere), writes every run to
# bench/results/presence-latest.json, and exits non-zero if any run failed.
#
# Set-up: Kamailio 5.6 from Debian's packages (kamailio, kamailio-sqlite-modules,
# kamailio-presence-modules: installed with apt-get when missing) runs
# bench/kamailio/presence.cfg: digest (MD5) REGISTER, SUBSCRIBE and PUBLISH against SQLite's
# subscriber table, usrloc in memory, presence + presence_xml with every watcher allowed
# (force_active, no XCAP), subscriptions and publications in memory (subs_db_mode 0,
# publ_cache 2; KAMAILIO_SUBS_DB_MODE and KAMAILIO_PUBL_CACHE change them), the presence
# tables created in SQLite from Kamailio's own schema. Confab runs `confab serve` with
# `--presence-unknown-watchers colleagues` (watchers without rules see the presentity), MD5
# only, its SQLite store, to which it writes presence behind every second. Both serve
# user1..userN@localhost with passwords pw-N (provisioned as bench/compare.sh does, through
# bench/lib.sh). Server on CPU 1, generator on CPU 0 (taskset), everything on 127.0.0.1.
#
#   bench/presence.sh                       # build (release), then the benchmark
#   SKIP_BUILD=1 bench/presence.sh          # use the binaries already built
#   SKIP_BUILD=1 ROUNDS=1 MEMORY=0 PUB_RATE=20 bench/presence.sh
#
# Settings (environment): ROUNDS (3), SERVERS ("confab kamailio"), PRESENTITIES (20), WATCHERS (500), WATCH (20: each
# watcher watches every presentity), PUB_RATE (10 PUBLISH/s), PUB_SECONDS (10), MEMORY (1;
# 0 skips the memory runs), MEM_WATCHERS (1,000), MEM_WATCH (20), MEM_RATE (1,000
# REGISTER/s), MEM_WAIT (40 s), TIMEOUT_S (5), EXPIRES (3,600 s: nothing expires during a
# run), KAMAILIO_SHM_MB (512), KAMAILIO_SUBS_DB_MODE (0), KAMAILIO_PUBL_CACHE (2),
# CONFAB_PORT (25080), KAMAILIO_PORT (25090), SERVER_CPU (1), LOAD_CPU (0), SKIP_BUILD,
# RESULTS (bench/results/presence-latest.json), KEEP_WORK=1 to keep the work directory.
#
# Time on the 2-core sandbox: about 5 minutes with the default settings (295 s measured, the
# script prints it: 3 rounds ~2.5 min, memory ~2.5 min), plus a release build when SKIP_BUILD
# is not set (fat LTO: 3 to 8 minutes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

ROUNDS="${ROUNDS:-3}"
# Which servers to measure, in this order each round (a rate Kamailio does not sustain can be
# probed on Confab alone: SERVERS=confab PUB_RATE=100 MEMORY=0).
SERVERS="${SERVERS:-confab kamailio}"
PRESENTITIES="${PRESENTITIES:-20}"
WATCHERS="${WATCHERS:-500}"
WATCH="${WATCH:-20}"
PUB_RATE="${PUB_RATE:-10}"
PUB_SECONDS="${PUB_SECONDS:-10}"
MEMORY="${MEMORY:-1}"
MEM_WATCHERS="${MEM_WATCHERS:-1000}"
MEM_WATCH="${MEM_WATCH:-20}"
MEM_RATE="${MEM_RATE:-1000}"
MEM_WAIT="${MEM_WAIT:-40}"
TIMEOUT_S="${TIMEOUT_S:-5}"
EXPIRES="${EXPIRES:-3600}"
KAMAILIO_SHM_MB="${KAMAILIO_SHM_MB:-512}"
KAMAILIO_SUBS_DB_MODE="${KAMAILIO_SUBS_DB_MODE:-0}"
KAMAILIO_PUBL_CACHE="${KAMAILIO_PUBL_CACHE:-2}"
UDP_RCVBUF=4194304
CONFAB_PORT="${CONFAB_PORT:-25080}"
KAMAILIO_PORT="${KAMAILIO_PORT:-25090}"
SERVER_CPU="${SERVER_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
RESULTS="${RESULTS:-$root/bench/results/presence-latest.json}"
DOMAIN=localhost
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bin="$CARGO_TARGET_DIR/release"

started=$(date +%s)
prog=presence
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---- tools ---------------------------------------------------------------------------------

extra=()
ls /usr/lib/*/kamailio/modules/presence_xml.so >/dev/null 2>&1 || extra+=(kamailio-presence-modules)
need_tools "${extra[@]}"
[[ -f $schema_dir/presence-create.sql ]] || die "no $schema_dir/presence-create.sql: is kamailio-sqlite-modules installed?"

# ---- build ---------------------------------------------------------------------------------

build_s=0
if [[ $SKIP_BUILD != 1 ]]; then
    say "building confab and confab-load (release, fat LTO: several minutes)"
    t0=$(date +%s)
    cargo build --release -p confab -p confab-ua --bins
    build_s=$(($(date +%s) - t0))
    say "build took ${build_s} s"
fi
for b in confab confab-load; do
    [[ -x $bin/$b ]] || die "no $bin/$b; build it (cargo build --release -p confab -p confab-ua --bins) or unset SKIP_BUILD"
done
"$bin/confab-load" --help | grep -q -- --presentities ||
    die "$bin/confab-load has no subscribe scenario (--presentities); build a version that has"

# ---- figures -------------------------------------------------------------------------------

for v in ROUNDS PRESENTITIES WATCHERS WATCH PUB_RATE PUB_SECONDS MEM_WATCHERS MEM_WATCH MEM_RATE MEM_WAIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (it is '${!v}')"
done
((PUB_RATE > 0 && PUB_SECONDS > 0 && ROUNDS > 0)) || die "ROUNDS, PUB_RATE and PUB_SECONDS must be above 0"
users=$((PRESENTITIES + WATCHERS))
subs=$((WATCHERS * WATCH))
mem_users=$((PRESENTITIES + MEM_WATCHERS))
mem_subs=$((MEM_WATCHERS * MEM_WATCH))
pub_count=$((PUB_RATE * PUB_SECONDS))
provisioned=$((users > mem_users ? users : mem_users))

# ---- servers -------------------------------------------------------------------------------

make_work confab-presence

ports_free "$CONFAB_PORT" "$KAMAILIO_PORT"

# Every start is from the provisioned state: both servers keep presence state across a
# restart when they store it (Confab always, Kamailio in subs_db_mode 1-3), and a run must
# not inherit the previous run's subscriptions.
start_server() {
    local server="$1" started=0
    case "$server" in
    confab)
        port=$CONFAB_PORT
        if [[ -d $work/confab-pristine ]]; then
            rm -rf "$work/confab-data"
            cp -a "$work/confab-pristine" "$work/confab-data"
        fi
        launch "$work/confab.log" "$bin/confab" serve --data-dir "$work/confab-data" --admin-listen 127.0.0.1:0 \
            --listen "udp://127.0.0.1:$CONFAB_PORT" --digest-algorithms MD5 --log-level warn \
            --presence-unknown-watchers colleagues &&
            started=1
        ;;
    kamailio)
        port=$KAMAILIO_PORT
        cp "$work/kamailio-pristine.db" "$work/kamailio.db"
        launch "$work/kamailio.log" "$kamailio_bin" -f "$root/bench/kamailio/presence.cfg" \
            -DD -E -m "$KAMAILIO_SHM_MB" -b "$UDP_RCVBUF" -A "BENCH_PORT=$KAMAILIO_PORT" \
            -A "BENCH_DOMAIN=\"$DOMAIN\"" -A "BENCH_DBURL=\"sqlite://$work/kamailio.db\"" \
            -A "BENCH_SUBS_DB_MODE=$KAMAILIO_SUBS_DB_MODE" -A "BENCH_PUBL_CACHE=$KAMAILIO_PUBL_CACHE" &&
            started=1
        ;;
    esac
    local wait_s=$((15 + provisioned / 50000))
    if [[ $started != 1 ]] || ! python3 bench/procstat.py ping "$port" "$wait_s"; then
        say "$server did not answer OPTIONS on 127.0.0.1:$port within $wait_s s; its log ends:"
        tail -n 20 "$work/$server.log" >&2 || true
        stop_server
        return 1
    fi
}

# load OUT ERR ARGS...: confab-load on the generator's CPU against the running server; sets
# $code (its exit status) and $wall_s.
code=0
wall_s=0
load() {
    local out="$1" errf="$2" t0
    shift 2
    rm -f "$out" "$errf"
    code=0
    t0=$(date +%s.%N)
    taskset -c "$LOAD_CPU" "$bin/confab-load" --server "127.0.0.1:$port" --domain "$DOMAIN" \
        --timeout "$TIMEOUT_S" --expires "$EXPIRES" --json "$@" >"$out" 2>"$errf" || code=$?
    wall_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
    if [[ $code -ne 0 && $code -ne 1 ]]; then
        say "the load generator could not run (exit $code): $(head -c 300 "$errf")"
    fi
}

# subscribe_args COUNT: the subscribe scenario of the CPU runs, COUNT PUBLISHes.
subscribe_args() {
    echo --scenario subscribe --users "$users" --presentities "$PRESENTITIES" --watch "$WATCH" \
        --rate "$PUB_RATE" --count "$1" --duration "$((PUB_SECONDS + 2))"
}

# cpu_run SERVER PHASE ROUND COUNT: one run of the subscribe scenario on a fresh server, CPU
# read idle before and idle after; recorded in $raw, sets $verdict.
verdict=""
cpu_run() {
    local server="$1" phase="$2" round="$3" count="$4" cpu0 cpu1 args
    if ! start_server "$server"; then
        verdict=$(python3 bench/presence_results.py add "$raw" server="$server" phase="$phase" \
            round="$round" exit=-1 error="the server did not start")
        return 0
    fi
    settle
    cpu0=$(python3 bench/procstat.py cpu "$server_pgid")
    read -r -a args <<<"$(subscribe_args "$count")"
    load "$work/load.json" "$work/load.err" "${args[@]}"
    settle 30
    cpu1=$(python3 bench/procstat.py cpu "$server_pgid")
    verdict=$(python3 bench/presence_results.py add "$raw" server="$server" phase="$phase" \
        round="$round" scenario=subscribe rate="$PUB_RATE" count="$count" users="$users" \
        subs="$subs" exit="$code" wall_s="$wall_s" settled_s="$settled_s" \
        server_cpu_s="$(python3 -c "print(round($cpu1 - $cpu0, 2))")" \
        --load "$work/load.json" --stderr "$work/load.err" --log "$work/$server.log")
    stop_server
}

# mem_run SERVER: registrations, then subscriptions, on one fresh server; PSS and RSS fresh,
# after the registrations and after the subscriptions (each idle plus MEM_WAIT).
mem_run() {
    local server="$1" m0 m1 m2 peak pf rf pr rr ps rs procs ppk rpk reg_code reg_ok
    if ! start_server "$server"; then
        verdict=$(python3 bench/presence_results.py add "$raw" server="$server" phase=memory \
            round=0 exit=-1 error="the server did not start")
        return 0
    fi
    settle
    m0=$(python3 bench/procstat.py mem "$server_pgid")
    load "$work/register.json" "$work/register.err" --scenario register --users "$mem_users" \
        --rate "$MEM_RATE" --count "$mem_users" --duration "$((2 * mem_users / MEM_RATE + 10))"
    reg_code=$code
    reg_ok=$(python3 -c "
import json, sys
try:
    r = json.load(open('$work/register.json'))
except (OSError, ValueError):
    sys.exit(print(0))
print(1 if r.get('succeeded') == $mem_users and not sum(r.get('failures', {}).values()) else 0)")
    settle 120
    sleep "$MEM_WAIT"
    m1=$(python3 bench/procstat.py mem "$server_pgid")
    load "$work/load.json" "$work/load.err" --scenario subscribe --users "$mem_users" \
        --presentities "$PRESENTITIES" --watch "$MEM_WATCH" --rate 1 --count 0 --duration 1
    settle 120
    peak=$(python3 bench/procstat.py mem "$server_pgid")
    sleep "$MEM_WAIT"
    m2=$(python3 bench/procstat.py mem "$server_pgid")
    read -r pf rf _ <<<"$m0"
    read -r pr rr _ <<<"$m1"
    read -r ps rs procs <<<"$m2"
    read -r ppk rpk _ <<<"$peak"
    [[ $reg_ok == 1 ]] || code=$((reg_code > 1 ? reg_code : 99))
    verdict=$(python3 bench/presence_results.py add "$raw" server="$server" phase=memory round=0 \
        scenario=subscribe users="$mem_users" subs="$mem_subs" exit="$code" \
        register_exit="$reg_code" registered_all="$reg_ok" wall_s="$wall_s" \
        settled_s="$settled_s" processes="$procs" pss_fresh_kb="$pf" rss_fresh_kb="$rf" \
        pss_registered_kb="$pr" rss_registered_kb="$rr" pss_subscribed_kb="$ps" \
        rss_subscribed_kb="$rs" pss_peak_kb="$ppk" rss_peak_kb="$rpk" \
        --load "$work/load.json" --stderr "$work/load.err" --log "$work/$server.log")
    stop_server
}

# ---- users ---------------------------------------------------------------------------------

say "work directory $work; $provisioned users user1..user$provisioned@$DOMAIN, passwords pw-N"
say "pinning: servers on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU (taskset)"
umask 077
provision_kamailio "$work/kamailio-pristine.db" "$provisioned" "$schema_dir/presence-create.sql"
provision_confab "$provisioned"
cp -a "$work/confab-data" "$work/confab-pristine"

python3 bench/presence_results.py note "$raw" rounds="$ROUNDS" presentities="$PRESENTITIES" \
    watchers="$WATCHERS" watch="$WATCH" users="$users" subs="$subs" pub_rate="$PUB_RATE" \
    pub_seconds="$PUB_SECONDS" mem_watchers="$MEM_WATCHERS" mem_watch="$MEM_WATCH" \
    mem_users="$mem_users" mem_subs="$mem_subs" mem_rate="$MEM_RATE" mem_wait="$MEM_WAIT" \
    server_cpu="$SERVER_CPU" load_cpu="$LOAD_CPU" kamailio_shm_mb="$KAMAILIO_SHM_MB" \
    kamailio_subs_db_mode="$KAMAILIO_SUBS_DB_MODE" kamailio_publ_cache="$KAMAILIO_PUBL_CACHE" \
    build_s="$build_s" confab_provision_s="$confab_provision_s" \
    kamailio_provision_s="$kamailio_provision_s" \
    confab_version="$("$bin/confab" --version)" kamailio_version="$("$kamailio_bin" -v | head -n 1)" \
    confab_commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# ---- 1. CPU per NOTIFY and latency, ROUNDS rounds ------------------------------------------

bench_t0=$(date +%s)
say "$subs subscriptions ($PRESENTITIES presentities, $WATCHERS watchers watching $WATCH each), $PUB_RATE PUBLISH/s for $PUB_SECONDS s: $((PUB_RATE * subs / PRESENTITIES)) NOTIFY/s"
for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        cpu_run "$server" setup "$round" 0
        say "round $round/$ROUNDS: set-up alone on $server: $verdict ($wall_s s)"
        cpu_run "$server" notify "$round" "$pub_count"
        say "round $round/$ROUNDS: $pub_count PUBLISHes on $server: $verdict ($wall_s s)"
    done
done

# ---- 2. memory per subscription --------------------------------------------------------------

if [[ $MEMORY == 1 ]]; then
    for server in $SERVERS; do
        mem_run "$server"
        say "memory: $mem_users users registered, then $mem_subs subscriptions on $server: $verdict"
    done
fi

# ---- report --------------------------------------------------------------------------------

bench_s=$(($(date +%s) - bench_t0))
total_s=$(($(date +%s) - started))
python3 bench/presence_results.py note "$raw" benchmark_s="$bench_s" total_s="$total_s"
echo
say "servers pinned to CPU $SERVER_CPU, generator to CPU $LOAD_CPU; medians of $ROUNDS round(s)"
status=0
python3 bench/presence_results.py report "$raw" "$RESULTS" || status=$?
say "build ${build_s} s, provisioning ${confab_provision_s} s (Confab) / ${kamailio_provision_s} s (Kamailio), measurements ${bench_s} s, total ${total_s} s"
say "raw results: $RESULTS"
exit "$status"
