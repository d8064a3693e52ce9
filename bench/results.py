#!/usr/bin/env python3
"""Raw results of bench/compare.sh, and the report made from them.

    results.py add RAW KEY=VALUE... [--load FILE] [--stderr FILE] [--log FILE]
        Appends one run to RAW (JSON lines): the given fields (numbers where they parse),
        the load generator's JSON report from FILE (null if it printed none) and, when the
        run failed, the end of the generator's standard error and of the server's log. Prints the run's verdict:
        `pass` (zero failures, and at least 95 % of the offered rate achieved) or `fail`.

    results.py note RAW KEY=VALUE...
        Appends a record of facts about the whole benchmark (phase=meta).

    results.py report RAW OUT
        Writes the summary and every run to OUT (JSON), prints the table of medians and
        Confab/Kamailio ratios, and exits 1 if any scenario failed to run.
"""

import json
import os
import platform
import statistics
import sys
import time

SERVERS = ("confab", "kamailio")
# A run at an offered rate "sustains" it when it achieves at least this share of it.
SUSTAINED = 0.95
# ... and, in the search for the maximum rate, answers the median operation within this
# many microseconds: above it, requests wait in a queue the server no longer drains between
# them (a server that keeps up answers in a fraction of a millisecond here), and the rate
# is the server's saturation point rather than a rate it sustains.
SEARCH_P50_US = 10_000


def value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fields(args):
    out = {}
    for arg in args:
        key, _, val = arg.partition("=")
        out[key] = value(val)
    return out


def verdict(run):
    load = run.get("load")
    if run.get("exit") not in (0, 1) or not load:
        return "fail"
    if load.get("failures") or not load.get("succeeded"):
        return "fail"
    if load.get("succeeded") != load.get("attempted"):
        return "fail"
    rate = run.get("rate")
    # Set-up runs (one operation) and the memory run are judged by their failures alone.
    if run.get("phase") in ("setup", "memory"):
        return "pass"
    if isinstance(rate, (int, float)) and rate > 0:
        if load.get("rate_per_s", 0) < SUSTAINED * rate:
            return "fail"
    if run.get("phase") == "search":
        p50 = (load.get("latency") or {}).get("p50_us", 0)
        if p50 > SEARCH_P50_US:
            return "fail"
    return "pass"


def read(raw):
    runs = []
    if os.path.exists(raw):
        with open(raw) as f:
            for line in f:
                line = line.strip()
                if line:
                    runs.append(json.loads(line))
    return runs


def add(raw, args):
    load_file = stderr_file = log_file = None
    rest = []
    it = iter(args)
    for arg in it:
        if arg == "--load":
            load_file = next(it)
        elif arg == "--stderr":
            stderr_file = next(it)
        elif arg == "--log":
            log_file = next(it)
        else:
            rest.append(arg)
    run = fields(rest)
    run["load"] = None
    if load_file and os.path.exists(load_file):
        try:
            with open(load_file) as f:
                run["load"] = json.load(f)
        except ValueError:
            run["load"] = None
    run["verdict"] = verdict(run)
    if run["verdict"] == "fail":
        for key, path in (("stderr", stderr_file), ("server_log", log_file)):
            if path and os.path.exists(path):
                with open(path, errors="replace") as f:
                    run[key] = f.read()[-2000:]
    with open(raw, "a") as f:
        f.write(json.dumps(run) + "\n")
    print(run["verdict"])


def search_best(runs, server, scenario):
    """The highest offered rate the server sustained in the search, the lowest it did not,
    and the generator's load (cores) in that failing run."""
    best = None
    fail = None
    fail_cores = None
    for r in runs:
        if r.get("phase") != "search" or r.get("server") != server:
            continue
        if r.get("scenario") != scenario:
            continue
        if r["verdict"] == "pass":
            best = r["rate"] if best is None else max(best, r["rate"])
        elif fail is None or r["rate"] < fail:
            fail = r["rate"]
            fail_cores = (r.get("load") or {}).get("cpu_cores")
    return best, fail, fail_cores


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fixed_rate(runs, phase, server, scenario, setup):
    """Medians of the runs of one phase at one fixed rate (the set-up's CPU subtracted), or
    None when the phase did not run."""
    runs = [
        r
        for r in runs
        if r.get("phase") == phase and r.get("server") == server and r.get("scenario") == scenario
    ]
    if not runs:
        return None
    ok = [r for r in runs if r.get("load") and r["load"].get("succeeded")]
    return {
        "rate": median([r.get("rate") for r in runs]),
        "cpu_us_per_op": median(
            [max(0.0, r["server_cpu_s"] - (setup or 0.0)) / r["load"]["succeeded"] * 1e6 for r in ok]
        ),
        "latency_p50_us": median([(r["load"].get("latency") or {}).get("p50_us") for r in ok]),
        "latency_p99_us": median([(r["load"].get("latency") or {}).get("p99_us") for r in ok]),
        "runs": len(runs),
        "runs_ok": len(ok),
        "runs_not_sustained": sum(1 for r in runs if r["verdict"] != "pass"),
        "failures": sum(sum((r.get("load") or {}).get("failures", {}).values()) for r in runs),
    }


def summarise(runs):
    meta = {}
    for r in runs:
        if r.get("phase") == "meta":
            meta.update({k: v for k, v in r.items() if k not in ("phase", "load", "verdict")})
    scenarios = []
    for r in runs:
        s = r.get("scenario")
        if r.get("phase") in ("latency", "search") and s not in scenarios:
            scenarios.append(s)
    summary = {}
    failed = []
    for scenario in scenarios:
        rows = {}
        for server in SERVERS:
            # What registering the users before a message or call run cost the server.
            setup = median(
                [
                    r["server_cpu_s"]
                    for r in runs
                    if r.get("phase") == "setup"
                    and r.get("server") == server
                    and r.get("scenario") == scenario
                    and r["verdict"] == "pass"
                ]
            )
            lat = fixed_rate(runs, "latency", server, scenario, setup) or {}
            best, fail, fail_cores = search_best(runs, server, scenario)
            rows[server] = {
                "cpu_us_per_op": lat.get("cpu_us_per_op"),
                "setup_cpu_s": setup,
                "latency_p50_us": lat.get("latency_p50_us"),
                "latency_p99_us": lat.get("latency_p99_us"),
                "max_sustained_rate": best,
                "first_failing_rate": fail,
                "generator_cores_at_first_failure": fail_cores,
                "fixed_rate_runs": lat.get("runs", 0),
                "fixed_rate_runs_ok": lat.get("runs_ok", 0),
                "fixed_rate_failures": lat.get("failures", 0),
                "fixed_rate_runs_not_sustained": lat.get("runs_not_sustained", 0),
            }
            for phase, key in (("half", "half_lower_max"), ("own-half", "half_own_max")):
                loaded = fixed_rate(runs, phase, server, scenario, setup)
                if loaded is not None:
                    rows[server][key] = loaded
                    if not loaded["runs_ok"]:
                        failed.append(f"{scenario} on {server} at {loaded['rate']}/s")
            if not lat.get("runs_ok"):
                failed.append(f"{scenario} on {server}")
        summary[scenario] = rows
    memory = {}
    for server in SERVERS:
        mem = [r for r in runs if r.get("phase") == "memory" and r.get("server") == server]
        row = {"bytes_per_contact_pss": None, "bytes_per_contact_rss": None}
        for r in mem:
            load = r.get("load") or {}
            n = load.get("succeeded") or 0
            if n > 0:
                row = {
                    "registrations": n,
                    "failures": sum(load.get("failures", {}).values()),
                    "offered_rate": r.get("rate"),
                    "pss_before_kb": r.get("pss_before_kb"),
                    "pss_after_kb": r.get("pss_after_kb"),
                    "rss_before_kb": r.get("rss_before_kb"),
                    "rss_after_kb": r.get("rss_after_kb"),
                    "processes": r.get("processes"),
                    "settled_s": r.get("settled_s"),
                    "pss_peak_kb": r.get("pss_peak_kb"),
                    "rss_peak_kb": r.get("rss_peak_kb"),
                    "bytes_per_contact_pss": (r["pss_after_kb"] - r["pss_before_kb"]) * 1024 / n,
                    "bytes_per_contact_rss": (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / n,
                }
        if mem and row.get("bytes_per_contact_pss") is None:
            failed.append(f"memory on {server}")
        memory[server] = row
    if any(r.get("phase") == "memory" for r in runs):
        summary["memory"] = memory
    return meta, summary, failed


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(meta, summary):
    lines = []
    lat_rate = meta.get("lat_rate", "?")
    header = ("scenario", "metric", "Confab", "Kamailio", "Confab/Kamailio")
    rows = [header]
    for scenario, per in summary.items():
        if scenario == "memory":
            continue
        c, k = per["confab"], per["kamailio"]
        for key, label, digits in (
            ("cpu_us_per_op", f"server CPU per op @{lat_rate}/s (µs)", 1),
            ("latency_p50_us", f"latency p50 @{lat_rate}/s (µs)", 0),
            ("latency_p99_us", f"latency p99 @{lat_rate}/s (µs)", 0),
            ("max_sustained_rate", "max sustained rate, 0 failures (ops/s)", 0),
        ):
            r = ratio(c[key], k[key])
            rows.append((scenario, label, fmt(c[key], digits), fmt(k[key], digits), fmt(r, 2)))
        hc, hk = c.get("half_lower_max"), k.get("half_lower_max")
        if hc or hk:
            rate = fmt((hc or hk)["rate"])
            for key, label, digits in (
                ("cpu_us_per_op", f"server CPU per op @{rate}/s, ½ lower max (µs)", 1),
                ("latency_p50_us", f"latency p50 @{rate}/s (µs)", 0),
                ("latency_p99_us", f"latency p99 @{rate}/s (µs)", 0),
            ):
                a, b = (hc or {}).get(key), (hk or {}).get(key)
                rows.append((scenario, label, fmt(a, digits), fmt(b, digits), fmt(ratio(a, b), 2)))
        # p99 at half of each server's own maximum (the one above when that is the lower).
        own = {}
        for name, row in (("confab", c), ("kamailio", k)):
            o = row.get("half_own_max") or row.get("half_lower_max")
            if o:
                own[name] = o
        if own:
            a, b = own.get("confab"), own.get("kamailio")
            label = "latency p99 @½ own max: " + " / ".join(
                f"{fmt(o['rate'])}/s" for o in (a, b) if o
            ) + " (µs)"
            pa = a and a.get("latency_p99_us")
            pb = b and b.get("latency_p99_us")
            rows.append((scenario, label, fmt(pa), fmt(pb), fmt(ratio(pa, pb), 2)))
    if "memory" in summary:
        c, k = summary["memory"]["confab"], summary["memory"]["kamailio"]
        n = meta.get("mem_users", "?")
        for key, label in (
            ("bytes_per_contact_pss", f"PSS per contact @{fmt(n)} (bytes)"),
            ("bytes_per_contact_rss", f"RSS per contact @{fmt(n)} (bytes)"),
        ):
            rows.append(
                ("register", label, fmt(c.get(key)), fmt(k.get(key)), fmt(ratio(c.get(key), k.get(key)), 2))
            )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for i, r in enumerate(rows):
        cells = [str(c).ljust(widths[j]) if j < 2 else str(c).rjust(widths[j]) for j, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine():
    """The kernel, the CPU count and model of this machine, for the results document."""
    found = {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    found["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return found


def write(out, meta, summary, runs, **failures):
    """Writes the results document (every run but the meta lines) to `out` as JSON."""
    doc = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "meta": meta,
        "summary": summary,
        **failures,
        "runs": [r for r in runs if r.get("phase") != "meta"],
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def report(raw, out):
    runs = read(raw)
    meta, summary, failed = summarise(runs)
    write(out, meta, summary, runs, failed_to_run=failed)
    print(table(meta, summary))
    for scenario, per in summary.items():
        if scenario == "memory":
            continue
        for server in SERVERS:
            row = per[server]
            cores = row["generator_cores_at_first_failure"]
            if cores is not None and cores >= 0.9:
                print(
                    f"note: {scenario} on {server}: the generator was busy {cores:.2f} cores at "
                    f"{fmt(row['first_failing_rate'])}/s; the maximum rate may be the generator's"
                )
            if row["fixed_rate_failures"]:
                print(
                    f"warning: {scenario} on {server}: {row['fixed_rate_failures']} failed "
                    f"operation(s) at the fixed rate"
                )
            if row["fixed_rate_runs_not_sustained"]:
                print(
                    f"warning: {scenario} on {server}: {row['fixed_rate_runs_not_sustained']} "
                    f"of {row['fixed_rate_runs']} fixed-rate run(s) had failures or fell short "
                    f"of the rate (see runs in the JSON)"
                )
    for server, row in summary.get("memory", {}).items():
        if row.get("failures"):
            print(f"warning: memory on {server}: {row['failures']} registration(s) failed")
        if row.get("settled_s") and row["settled_s"] > 5:
            print(
                f"note: memory on {server}: busy {row['settled_s']} s after the last "
                f"registration before memory was read (write-behind catching up)"
            )
    if failed:
        print("FAILED to run: " + ", ".join(failed))
        return 1
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "add":
        add(argv[2], argv[3:])
    elif len(argv) >= 3 and argv[1] == "note":
        run = fields(argv[3:])
        run["phase"] = "meta"
        with open(argv[2], "a") as f:
            f.write(json.dumps(run) + "\n")
    elif len(argv) == 4 and argv[1] == "report":
        return report(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
