#!/usr/bin/env bash
# Confab beside Kamailio on this machine: the same users, the same scenarios at the same
# offered rates, against each server in turn, alternating. For each scenario (register,
# message, call) it reports:
#
#   * server CPU time per successful operation: user + system time of all the server's
#     processes and threads (/proc/PID/stat of every process in its process group), taken
#     before and after a run at a fixed moderate rate (LAT_RATE), divided by the operations
#     that succeeded; the median of ROUNDS rounds. The message and call scenarios first
#     register every user: a run of one operation on a fresh server measures that set-up,
#     and its CPU time is subtracted;
#   * latency p50 and p99 at that rate, as the load generator measures it; medians;
#   * maximum sustained rate with zero failures: open-loop runs of STEP_SECONDS at rising
#     offered rates (SEARCH_RATES, doubling), stopping at the first run with any failure,
#     achieving under 95 % of the offered rate, or with a median latency over 10 ms (a
#     standing queue: the server's saturation point, not a rate it sustains), then two
#     bisection steps between the last rate sustained and the first not; one search per
#     server, alternating step by step;
#   * CPU per operation and latency under load: after the search, per scenario, both
#     servers at half of the lower of their two maximum rates (the same offered load, so
#     that CPU per operation compares like with like), and a server whose own maximum is
#     higher also at half of its own maximum (the latency target: p99 at half the maximum
#     sustained rate); ROUNDS rounds, medians; HALF=0 skips it;
#   * resident memory per registered contact: a fresh server, the proportional set size (PSS,
#     /proc/PID/smaps_rollup) summed over its processes — Kamailio's shared memory is mapped in
#     every child and PSS counts it once — before and after MEM_USERS distinct users register
#     once each at MEM_RATE, divided by the registrations; RSS likewise, for reference. "After"
#     is once the server is idle again plus MEM_WAIT seconds (40), so that the transactions of
#     the last registrations have ended (Timer J keeps a UDP non-INVITE server transaction
#     32 s); the peak right after is kept in the JSON. MEM_RATE (1,250/s) is a rate both
#     servers sustain for the whole 80 s run with room to spare (Confab keeps the REGISTER's
#     one transaction 32 s — its 401 challenge is stateless — under a cap of 800,000 live
#     transactions), so the memory figure is not a stress result.
#
# It prints a table of medians with Confab/Kamailio ratios (for CPU, latency and memory lower
# is better; for the rate higher is better), writes every run to bench/results/latest.json,
# and exits non-zero if any scenario failed to run.
#
# Set-up: Kamailio 5.6 from Debian's packages (installed with apt-get when missing, with its
# SQLite module) runs bench/kamailio/kamailio.cfg, the work Confab does (digest registrar,
# in-memory location, authenticating record-routing stateful proxy); both serve the same
# users user1..userN@localhost with passwords pw-N, Kamailio from SQLite's subscriber table
# (pre-computed MD5 HA1), Confab from its store filled by `confab user import`; Confab
# offers MD5 only, as Kamailio. Every server starts fresh for every measured run, so that no
# run inherits the previous one's registrations. Server on CPU 1, generator on CPU 0
# (taskset), everything on 127.0.0.1.
#
#   bench/compare.sh                     # build (release), then the benchmark
#   SKIP_BUILD=1 bench/compare.sh        # use the binaries already built
#   ROUNDS=5 SCENARIOS="register message" bench/compare.sh
#
# Time on the 2-core sandbox with nothing else running: the benchmark about 11.5 minutes
# (with 100,000 users provisioned in both stores in under 10 s); a release build from a clean
# checkout (fat LTO) about 3.3 minutes more: 14 min 51 s in all, measured from a clean clone. When other builds
# compete for the two cores the build alone took over 7 minutes: build first (`cargo build
# --release -p confab -p confab-ua --bins`) and run with SKIP_BUILD=1 to time the benchmark
# alone. The script prints both times. Load generator: target/release/confab-load
# (crates/confab-ua).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

ROUNDS="${ROUNDS:-3}"
USERS="${USERS:-500}"
MEM_USERS="${MEM_USERS:-100000}"
MEM_RATE="${MEM_RATE:-1250}"
MEM_WAIT="${MEM_WAIT:-40}"
LAT_RATE="${LAT_RATE:-1000}"
LAT_SECONDS="${LAT_SECONDS:-4}"
STEP_SECONDS="${STEP_SECONDS:-3}"
SEARCH_RATES="${SEARCH_RATES-2000 4000 8000 16000 32000}"
# Empty runs no scenario: the memory run alone.
SCENARIOS="${SCENARIOS-register message call}"
TIMEOUT_S="${TIMEOUT_S:-5}"
KAMAILIO_SHM_MB="${KAMAILIO_SHM_MB:-1024}"
# Kamailio's UDP receive buffer: Confab asks for 4 MiB; Kamailio probes up to 256 KiB unless -b.
UDP_RCVBUF=4194304
CONFAB_PORT="${CONFAB_PORT:-25060}"
KAMAILIO_PORT="${KAMAILIO_PORT:-25070}"
SERVER_CPU="${SERVER_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
MEMORY="${MEMORY:-1}"
HALF="${HALF:-1}"
SKIP_BUILD="${SKIP_BUILD:-0}"
RESULTS="${RESULTS:-$root/bench/results/latest.json}"
DOMAIN=localhost
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bin="$CARGO_TARGET_DIR/release"

started=$(date +%s)
prog=compare
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---- tools ---------------------------------------------------------------------------------

# shellcheck disable=SC2119 # no packages beyond the defaults
need_tools

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

# ---- servers -------------------------------------------------------------------------------

make_work confab-bench

ports_free "$CONFAB_PORT" "$KAMAILIO_PORT"

start_server() {
    local server="$1" started=0
    case "$server" in
    confab)
        port=$CONFAB_PORT
        launch "$work/confab.log" "$bin/confab" serve --data-dir "$work/confab-data" --admin-listen 127.0.0.1:0 \
            --listen "udp://127.0.0.1:$CONFAB_PORT" --digest-algorithms MD5 --log-level warn &&
            started=1
        ;;
    kamailio)
        port=$KAMAILIO_PORT
        launch "$work/kamailio.log" "$kamailio_bin" -f "$root/bench/kamailio/kamailio.cfg" \
            -DD -E -m "$KAMAILIO_SHM_MB" -b "$UDP_RCVBUF" -A "BENCH_PORT=$KAMAILIO_PORT" \
            -A "BENCH_DOMAIN=\"$DOMAIN\"" -A "BENCH_DBURL=\"sqlite://$work/kamailio.db\"" &&
            started=1
        ;;
    esac
    # Confab reads its directory before it listens: about 15 s a million users.
    local wait_s=$((15 + provisioned / 50000))
    if [[ $started != 1 ]] || ! python3 bench/procstat.py ping "$port" "$wait_s"; then
        say "$server did not answer OPTIONS on 127.0.0.1:$port within $wait_s s; its log ends:"
        tail -n 20 "$work/$server.log" >&2 || true
        stop_server
        return 1
    fi
}

# run_load SERVER PHASE ROUND SCENARIO RATE SECONDS USERS COUNT: one generator run against
# the running server, recorded in $raw; sets $verdict (pass or fail).
verdict=""
run_load() {
    local server="$1" phase="$2" round="$3" scenario="$4" rate="$5" seconds="$6" users="$7" count="$8"
    local out="$work/load.json" errf="$work/load.err" cpu0 cpu1 code=0 mem0 mem1 duration
    local pss0 rss0 pss1 rss1 procs pss_peak rss_peak
    duration=$((seconds + 2))
    # The memory run must register every user whatever the pace: the count ends it.
    [[ $phase == memory ]] && duration=$((2 * seconds + 10))
    rm -f "$out" "$errf"
    mem0=$(python3 bench/procstat.py mem "$server_pgid")
    cpu0=$(python3 bench/procstat.py cpu "$server_pgid")
    taskset -c "$LOAD_CPU" "$bin/confab-load" --server "127.0.0.1:$port" --domain "$DOMAIN" \
        --users "$users" --scenario "$scenario" --rate "$rate" --count "$count" \
        --duration "$duration" --timeout "$TIMEOUT_S" --json >"$out" 2>"$errf" || code=$?
    cpu1=$(python3 bench/procstat.py cpu "$server_pgid")
    settled_s=0
    local peak="0 0 0"
    if [[ $phase == memory ]]; then
        # Memory is read once the server is idle again (write-behind caught up) and the
        # transactions of the last registrations are gone (Timer J, 64·T1 = 32 s).
        settle 120
        peak=$(python3 bench/procstat.py mem "$server_pgid")
        sleep "$MEM_WAIT"
    fi
    mem1=$(python3 bench/procstat.py mem "$server_pgid")
    read -r pss0 rss0 _ <<<"$mem0"
    read -r pss1 rss1 procs <<<"$mem1"
    read -r pss_peak rss_peak _ <<<"$peak"
    verdict=$(python3 bench/results.py add "$raw" server="$server" phase="$phase" round="$round" \
        scenario="$scenario" rate="$rate" seconds="$seconds" users="$users" count="$count" \
        exit="$code" server_cpu_s="$(python3 -c "print(round($cpu1 - $cpu0, 2))")" \
        pss_before_kb="$pss0" pss_after_kb="$pss1" rss_before_kb="$rss0" rss_after_kb="$rss1" \
        processes="$procs" settled_s="$settled_s" pss_peak_kb="$pss_peak" rss_peak_kb="$rss_peak" \
        --load "$out" --stderr "$errf" \
        --log "$work/$server.log")
    if [[ $code -ne 0 && $code -ne 1 ]]; then
        say "$scenario on $server: the load generator could not run (exit $code): $(head -c 300 "$errf")"
    fi
}

# One measured run on a freshly started server; sets $verdict.
fresh_run() {
    local server="$1"
    shift
    if start_server "$server"; then
        run_load "$server" "$@"
        stop_server
    else
        not_started "$server" "$@"
    fi
}

# Records a run that could not happen because the server did not start.
not_started() {
    local server="$1" phase="$2" round="$3" scenario="$4" rate="$5" seconds="$6" users="$7" count="$8"
    verdict=$(python3 bench/results.py add "$raw" server="$server" phase="$phase" \
        round="$round" scenario="$scenario" rate="$rate" seconds="$seconds" users="$users" \
        count="$count" exit=-1 error="the server did not start")
}

# ---- users ---------------------------------------------------------------------------------

# Users provisioned in both: enough for the memory run and for the scenarios.
provisioned=$((USERS > MEM_USERS ? USERS : MEM_USERS))
say "work directory $work; $provisioned users user1..user$provisioned@$DOMAIN, passwords pw-N"
say "pinning: servers on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU (taskset)"
umask 077

provision_kamailio "$work/kamailio.db" "$provisioned"
provision_confab "$provisioned"

python3 bench/results.py note "$raw" rounds="$ROUNDS" users="$USERS" mem_users="$MEM_USERS" \
    lat_rate="$LAT_RATE" lat_seconds="$LAT_SECONDS" step_seconds="$STEP_SECONDS" \
    search_rates="$SEARCH_RATES" scenarios="$SCENARIOS" server_cpu="$SERVER_CPU" \
    load_cpu="$LOAD_CPU" kamailio_shm_mb="$KAMAILIO_SHM_MB" build_s="$build_s" \
    confab_provision_s="$confab_provision_s" kamailio_provision_s="$kamailio_provision_s" \
    confab_version="$("$bin/confab" --version)" kamailio_version="$("$kamailio_bin" -v | head -n 1)" \
    confab_commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# ---- 1. CPU per operation and latency at a fixed rate, ROUNDS rounds ----------------------

bench_t0=$(date +%s)
lat_count=$((LAT_RATE * LAT_SECONDS))
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for server in confab kamailio; do
            if [[ $scenario != register ]]; then
                # The generator registers every user before a message or call run; one
                # operation after that set-up measures what the set-up costs the server,
                # which the report subtracts.
                fresh_run "$server" setup "$round" "$scenario" "$LAT_RATE" 1 "$USERS" 1
            fi
            fresh_run "$server" latency "$round" "$scenario" "$LAT_RATE" "$LAT_SECONDS" "$USERS" "$lat_count"
            say "round $round/$ROUNDS: $scenario on $server at $LAT_RATE/s: $verdict"
        done
    done
done

# ---- 2. maximum sustained rate ------------------------------------------------------------

declare -A max_rate=()
for scenario in $SCENARIOS; do
    declare -A best=() fail=()
    for rate in $SEARCH_RATES; do
        for server in confab kamailio; do
            [[ -z ${fail[$server]:-} ]] || continue
            fresh_run "$server" search 0 "$scenario" "$rate" "$STEP_SECONDS" "$USERS" "$((rate * STEP_SECONDS))"
            say "search: $scenario on $server at $rate/s: $verdict"
            if [[ $verdict == pass ]]; then best[$server]=$rate; else fail[$server]=$rate; fi
        done
        [[ -n ${fail[confab]:-} && -n ${fail[kamailio]:-} ]] && break
    done
    # Two bisection steps between the last rate sustained and the first not.
    for _ in 1 2; do
        for server in confab kamailio; do
            [[ -n ${best[$server]:-} && -n ${fail[$server]:-} ]] || continue
            rate=$(((${best[$server]} + ${fail[$server]}) / 2))
            fresh_run "$server" search 0 "$scenario" "$rate" "$STEP_SECONDS" "$USERS" "$((rate * STEP_SECONDS))"
            say "search: $scenario on $server at $rate/s: $verdict"
            if [[ $verdict == pass ]]; then best[$server]=$rate; else fail[$server]=$rate; fi
        done
    done
    for server in confab kamailio; do
        max_rate[$scenario,$server]=${best[$server]:-0}
    done
    unset best fail
done

# ---- 3. CPU and latency under load: at half of the maximum rates, ROUNDS rounds -------------

# Per scenario, both servers at half of the lower of their two maximum rates (the same
# offered load, so that CPU per operation compares like with like: it falls as the rate
# rises); then each server whose own maximum is higher also at half of its own maximum, for
# the latency target. Rates are rounded down to a multiple of 100.
half_of() { echo $(($1 / 200 * 100)); }
if [[ $HALF == 1 ]]; then
    for round in $(seq "$ROUNDS"); do
        for scenario in $SCENARIOS; do
            c=${max_rate[$scenario,confab]:-0} k=${max_rate[$scenario,kamailio]:-0}
            lower=$((c < k ? c : k))
            common=$(half_of "$lower")
            for server in confab kamailio; do
                if ((common > 0)); then
                    fresh_run "$server" half "$round" "$scenario" "$common" "$LAT_SECONDS" \
                        "$USERS" "$((common * LAT_SECONDS))"
                    say "round $round/$ROUNDS: $scenario on $server at $common/s (half the lower maximum): $verdict"
                fi
                own=$(half_of "${max_rate[$scenario,$server]:-0}")
                if ((own > common)); then
                    fresh_run "$server" own-half "$round" "$scenario" "$own" "$LAT_SECONDS" \
                        "$USERS" "$((own * LAT_SECONDS))"
                    say "round $round/$ROUNDS: $scenario on $server at $own/s (half its maximum): $verdict"
                fi
            done
        done
    done
fi

# ---- 4. memory per registered contact -----------------------------------------------------

if [[ $MEMORY == 1 ]]; then
    mem_seconds=$(((MEM_USERS + MEM_RATE - 1) / MEM_RATE))
    for server in confab kamailio; do
        if start_server "$server"; then
            settle
            run_load "$server" memory 0 register "$MEM_RATE" "$mem_seconds" "$MEM_USERS" "$MEM_USERS"
            stop_server
        else
            not_started "$server" memory 0 register "$MEM_RATE" "$mem_seconds" "$MEM_USERS" "$MEM_USERS"
        fi
        say "memory: $MEM_USERS registrations on $server at $MEM_RATE/s: $verdict"
    done
fi

# ---- report --------------------------------------------------------------------------------

bench_s=$(($(date +%s) - bench_t0))
total_s=$(($(date +%s) - started))
python3 bench/results.py note "$raw" benchmark_s="$bench_s" total_s="$total_s" mem_rate="$MEM_RATE"
echo
say "servers pinned to CPU $SERVER_CPU, generator to CPU $LOAD_CPU; medians of $ROUNDS round(s)"
status=0
python3 bench/results.py report "$raw" "$RESULTS" || status=$?
say "build ${build_s} s, provisioning ${confab_provision_s} s (Confab) / ${kamailio_provision_s} s (Kamailio), measurements ${bench_s} s, total ${total_s} s"
say "raw results: $RESULTS"
exit "$status"
