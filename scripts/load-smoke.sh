#!/usr/bin/env bash
# Load smoke suite: the load generator against the real server, both as built binaries.
# Builds `confab` and `confab-load` (debug: CI has just built the workspace for `cargo test`,
# so little is left to compile), starts `confab serve` on a fresh data directory with one UDP
# listener on a free loopback port (showing unknown watchers their presentity, as the subscribe
# scenario needs: --presence-unknown-watchers colleagues), adds 20 users with `confab user add`,
# and runs confab-load's four scenarios — register, message, call, subscribe (users 1-4
# publish, the others each watch 2 of them) — with a small count at a modest rate. Fails unless
# every operation of every scenario succeeds and, for message, every message is delivered
# exactly once, and for subscribe every NOTIFY the PUBLISHes should cause arrives. Needs python3 (to read the JSON reports). The throughput comparison is under
# bench/; this only proves the generator and the server still speak to each other.
#
#   scripts/load-smoke.sh
#
# Environment: LOAD_SMOKE_COUNT operations per scenario (default 200), LOAD_SMOKE_RATE
# operations started per second (default 100), LOAD_SMOKE_USERS (default 20).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

count="${LOAD_SMOKE_COUNT:-200}"
rate="${LOAD_SMOKE_RATE:-100}"
users="${LOAD_SMOKE_USERS:-20}"

echo "load-smoke: building confab and confab-load"
cargo build -p confab -p confab-ua --bins
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
confab="$target_dir/debug/confab"
load="$target_dir/debug/confab-load"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "load-smoke: $*" >&2
    if [[ -s "$tmp/serve.err" ]]; then
        echo "load-smoke: the server's log ends with:" >&2
        tail -n 20 "$tmp/serve.err" >&2
    fi
    exit 1
}

# The server first: its first start creates the deployment (store, domain localhost) that
# `confab user add` then writes to. Port 0 binds a free port; the server prints the actual one.
"$confab" serve --data-dir "$tmp/data" --listen udp://127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --presence-unknown-watchers colleagues \
    >"$tmp/serve.out" 2>"$tmp/serve.err" </dev/null &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's|^listening udp://||p' "$tmp/serve.out" | head -n 1)"
    [[ -n "$addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || fail "confab serve exited at start"
    sleep 0.1
done
[[ -n "$addr" ]] || fail "confab serve printed no UDP listener within 10 s"
echo "load-smoke: confab serve listening on udp://$addr"

for n in $(seq 1 "$users"); do
    printf 'pw-%s\n' "$n" |
        "$confab" user add "user$n@localhost" --password-stdin --data-dir "$tmp/data" \
            >/dev/null 2>"$tmp/user-add.err" ||
        fail "confab user add user$n@localhost failed: $(cat "$tmp/user-add.err")"
done
echo "load-smoke: $users users added"

for scenario in register message call subscribe; do
    report="$tmp/$scenario.json"
    status=0
    extra=()
    if [[ "$scenario" == subscribe ]]; then
        extra=(--presentities 4 --watch 2)
    fi
    "$load" --server "$addr" --domain localhost --users "$users" --password-template 'pw-{n}' \
        --scenario "$scenario" --count "$count" --rate "$rate" --duration 60 --timeout 5 \
        ${extra[@]+"${extra[@]}"} --json >"$report" || status=$?
    if [[ ! -s "$report" ]]; then
        fail "confab-load --scenario $scenario produced no report (exit status $status)"
    fi
    python3 - "$report" "$scenario" "$count" <<'EOF' || fail "$scenario: see above"
import json
import sys

path, scenario, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path) as f:
    r = json.load(f)
problems = []
if r["attempted"] != count:
    problems.append(f"attempted {r['attempted']} of {count}")
if r["succeeded"] != r["attempted"]:
    problems.append(f"succeeded {r['succeeded']} of {r['attempted']}")
if r["failures"]:
    problems.append(f"failures {r['failures']}")
if scenario == "message" and r["delivered"] != r["succeeded"]:
    problems.append(f"delivered {r['delivered']} of {r['succeeded']} messages")
if scenario == "subscribe":
    if r["subscriptions"] == 0 or r["notifies_expected"] == 0:
        problems.append(
            f"{r['subscriptions']} subscriptions, {r['notifies_expected']} NOTIFYs expected"
        )
    if r["notifies"] != r["notifies_expected"]:
        problems.append(f"{r['notifies']} of {r['notifies_expected']} NOTIFYs came")
latency = r.get("latency") or {}
print(
    f"load-smoke: {scenario}: {r['succeeded']}/{r['attempted']} succeeded, "
    f"{r['rate_per_s']:.0f}/s, p50 {latency.get('p50_us', '-')} µs, "
    f"p99 {latency.get('p99_us', '-')} µs, {r['retransmissions']} retransmissions"
    + (f", {r['delivered']} delivered" if scenario == "message" else "")
    + (
        f", {r['subscriptions']} subscriptions, {r['notifies']}/{r['notifies_expected']} "
        f"NOTIFYs, NOTIFY p50 {(r.get('notify_latency') or {}).get('p50_us', '-')} µs"
        if scenario == "subscribe"
        else ""
    )
)
for p in problems:
    print(f"load-smoke: {scenario}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
    [[ "$status" -eq 0 ]] || fail "confab-load --scenario $scenario exited with status $status"
done

kill -TERM "$server_pid"
wait "$server_pid" || fail "confab serve did not stop cleanly on SIGTERM"
server_pid=""
echo "load-smoke: ok"
