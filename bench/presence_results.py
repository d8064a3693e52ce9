#!/usr/bin/env python3
"""Raw results of bench/presence.sh, and the report made from them.

    presence_results.py add RAW KEY=VALUE... [--load FILE] [--stderr FILE] [--log FILE]
        Appends one run to RAW (JSON lines): the given fields, the load generator's JSON
        report from FILE (null if it printed none) and, when the run failed, the end of the
        generator's standard error and of the server's log. Prints the verdict, `pass` or
        `fail`: a run passes when the generator ran (exit 0 or 1), no operation failed, every
        subscription asked for (the field `subs`) was established, and, for a measured run
        (phase `notify`), every PUBLISH succeeded at no less than 95 % of the offered rate and
        every NOTIFY expected came.

    presence_results.py note RAW KEY=VALUE...
        Appends facts about the whole benchmark (phase=meta).

    presence_results.py report RAW OUT
        Writes the summary and every run to OUT (JSON), prints the table of medians and
        Confab/Kamailio ratios, and exits 1 if any run failed.

The phases: `setup` (the subscribe scenario with --count 0: users registered and watchers
subscribed, what the measured runs also do before they publish), `notify` (the measured run),
`memory` (fields pss_fresh_kb, pss_registered_kb, pss_subscribed_kb and the same for RSS).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402  (bench/results.py: parsing, medians, formatting)

SERVERS = results.SERVERS
SUSTAINED = results.SUSTAINED


def verdict(run):
    load = run.get("load")
    if run.get("exit") not in (0, 1) or not load:
        return "fail"
    if sum((load.get("failures") or {}).values()):
        return "fail"
    if load.get("succeeded") != load.get("attempted"):
        return "fail"
    subs = run.get("subs")
    if run.get("scenario") == "subscribe" and subs and load.get("subscriptions") != subs:
        return "fail"
    if run.get("phase") == "notify":
        if not load.get("succeeded"):
            return "fail"
        rate = run.get("rate")
        if isinstance(rate, (int, float)) and load.get("rate_per_s", 0) < SUSTAINED * rate:
            return "fail"
        if load.get("notifies") != load.get("notifies_expected"):
            return "fail"
    return "pass"


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
    run = results.fields(rest)
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


def lat(run, key, q):
    return ((run.get("load") or {}).get(key) or {}).get(q)


def summarise(runs):
    meta = {}
    for r in runs:
        if r.get("phase") == "meta":
            meta.update({k: v for k, v in r.items() if k not in ("phase", "load", "verdict")})
    summary = {}
    failed = []
    for server in SERVERS:
        mine = [r for r in runs if r.get("server") == server]
        setups = [r for r in mine if r.get("phase") == "setup"]
        notify = [r for r in mine if r.get("phase") == "notify"]
        setup_ok = [r for r in setups if r["verdict"] == "pass"]
        ok = [r for r in notify if r["verdict"] == "pass"]
        setup_cpu = results.median([r["server_cpu_s"] for r in setup_ok])
        for r in setups + notify:
            if r["verdict"] != "pass":
                failed.append(f"{r['phase']} round {r.get('round')} on {server}")
        row = {
            "setup_cpu_s": setup_cpu,
            "setup_wall_s": results.median([r.get("wall_s") for r in setup_ok]),
            "subscriptions": results.median([r["load"]["subscriptions"] for r in ok]),
            "publishes": results.median([r["load"]["succeeded"] for r in ok]),
            "notifies": results.median([r["load"]["notifies"] for r in ok]),
            "cpu_s_measured": results.median([r["server_cpu_s"] for r in ok]),
            "cpu_us_per_notify": None,
            "cpu_us_per_notify_runs": [],
            "notify_latency_p50_us": results.median([lat(r, "notify_latency", "p50_us") for r in ok]),
            "notify_latency_p99_us": results.median([lat(r, "notify_latency", "p99_us") for r in ok]),
            "notify_latency_max_us": results.median([lat(r, "notify_latency", "max_us") for r in ok]),
            "publish_latency_p50_us": results.median([lat(r, "latency", "p50_us") for r in ok]),
            "publish_latency_p99_us": results.median([lat(r, "latency", "p99_us") for r in ok]),
            "runs": len(notify),
            "runs_ok": len(ok),
        }
        if setup_cpu is not None:
            per = [
                max(0.0, r["server_cpu_s"] - setup_cpu) / r["load"]["notifies"] * 1e6
                for r in ok
                if r["load"].get("notifies")
            ]
            row["cpu_us_per_notify_runs"] = [round(p, 2) for p in per]
            row["cpu_us_per_notify"] = results.median(per)
        mem = [r for r in mine if r.get("phase") == "memory"]
        for r in mem:
            subs = (r.get("load") or {}).get("subscriptions") or 0
            if r["verdict"] != "pass" or not subs:
                failed.append(f"memory on {server}")
                continue
            m = {k: r.get(k) for k in r if k.endswith("_kb") or k in ("users", "settled_s")}
            m["subscriptions"] = subs
            for kind in ("pss", "rss"):
                fresh = r[f"{kind}_fresh_kb"]
                registered = r[f"{kind}_registered_kb"]
                subscribed = r[f"{kind}_subscribed_kb"]
                # The subscribe run registers every user again from new ports: a second
                # binding each, which costs what the first registrations did.
                bindings = registered - fresh
                m[f"bytes_per_subscription_{kind}"] = (subscribed - registered - bindings) * 1024 / subs
                m[f"bytes_per_subscription_{kind}_uncorrected"] = (subscribed - registered) * 1024 / subs
            row["memory"] = m
        summary[server] = row
    return meta, summary, failed


def table(meta, summary):
    c, k = summary.get("confab", {}), summary.get("kamailio", {})
    rate = meta.get("pub_rate", "?")
    subs = results.fmt(meta.get("subs"))
    header = ("metric", "Confab", "Kamailio", "Confab/Kamailio")
    rows = [header]
    for key, label, digits in (
        ("cpu_us_per_notify", f"server CPU per NOTIFY @{rate} PUBLISH/s, {subs} subs (µs)", 2),
        ("notify_latency_p50_us", "NOTIFY latency p50 (µs)", 0),
        ("notify_latency_p99_us", "NOTIFY latency p99 (µs)", 0),
        ("publish_latency_p50_us", "PUBLISH latency p50 (µs)", 0),
        ("publish_latency_p99_us", "PUBLISH latency p99 (µs)", 0),
        ("notifies", "NOTIFYs counted per run", 0),
        ("setup_cpu_s", "set-up CPU: register + subscribe (s)", 2),
    ):
        a, b = c.get(key), k.get(key)
        rows.append((label, results.fmt(a, digits), results.fmt(b, digits), results.fmt(results.ratio(a, b), 2)))
    mc, mk = c.get("memory", {}), k.get("memory", {})
    if mc or mk:
        n = results.fmt(mc.get("subscriptions") or mk.get("subscriptions"))
        for key, label in (
            ("bytes_per_subscription_pss", f"PSS per subscription @{n} (bytes)"),
            ("bytes_per_subscription_rss", f"RSS per subscription @{n} (bytes)"),
            ("bytes_per_subscription_pss_uncorrected", "PSS per subscription, bindings kept in (bytes)"),
        ):
            a, b = mc.get(key), mk.get(key)
            rows.append((label, results.fmt(a), results.fmt(b), results.fmt(results.ratio(a, b), 2)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = []
    for i, r in enumerate(rows):
        cells = [str(x).ljust(widths[j]) if j == 0 else str(x).rjust(widths[j]) for j, x in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(raw, out):
    runs = results.read(raw)
    meta, summary, failed = summarise(runs)
    results.write(out, meta, summary, runs, failed=failed)
    print(table(meta, summary))
    for server in SERVERS:
        for r in runs:
            if r.get("server") == server and r.get("verdict") == "fail":
                load = r.get("load") or {}
                print(
                    f"failed: {r.get('phase')} round {r.get('round')} on {server}: exit "
                    f"{r.get('exit')}, attempted {load.get('attempted')}, succeeded "
                    f"{load.get('succeeded')}, failures {load.get('failures')}, subscriptions "
                    f"{load.get('subscriptions')}/{r.get('subs')}, notifies "
                    f"{load.get('notifies')}/{load.get('notifies_expected')}"
                )
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "add":
        add(argv[2], argv[3:])
    elif len(argv) >= 3 and argv[1] == "note":
        run = results.fields(argv[3:])
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
