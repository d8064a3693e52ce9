#!/usr/bin/env python3
"""What a server under test costs, read from /proc, for bench/compare.sh.

A server is every process of one process group (the script starts each server with setsid,
so the group is the server: Confab's one process with all its threads, Kamailio's main
process and every child it forks).

    procstat.py cpu PGID     CPU seconds (user + system) used so far by the group's processes
    procstat.py mem PGID     "PSS_KB RSS_KB PROCESSES": proportional set size summed over the
                             group (shared memory, such as Kamailio's, counted once in all)
                             and resident set size summed (shared pages counted per process)
    procstat.py ping PORT [TIMEOUT_S]
                             sends SIP OPTIONS to 127.0.0.1:PORT over UDP until a response
                             comes back (exit 0) or TIMEOUT_S (default 10) pass (exit 1)
"""

import os
import socket
import sys
import time


def group(pgid):
    """The processes whose process group is pgid: (pid, the fields of /proc/PID/stat after
    the command name), each stat file read once."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members.append((int(name), fields))
    return members


def cpu(pgid):
    ticks = os.sysconf("SC_CLK_TCK")
    # utime and stime: fields 14 and 15 of the line, 11 and 12 after the command name.
    total = sum(int(fields[11]) + int(fields[12]) for _, fields in group(pgid))
    return total / ticks


def mem(pgid):
    pss = rss = count = 0
    for pid, _ in group(pgid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                lines = f.readlines()
        except OSError:
            continue
        count += 1
        for line in lines:
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return pss, rss, count


def ping(port, timeout):
    deadline = time.monotonic() + timeout
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            n += 1
            request = (
                f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-bench-ping-{n};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:bench@127.0.0.1>;tag=bench{n}\r\n"
                f"To: <sip:127.0.0.1:{port}>\r\n"
                f"Call-ID: bench-ping-{os.getpid()}-{n}@127.0.0.1\r\n"
                f"CSeq: {n} OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(request.encode(), ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(65535)
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.1)
                continue
            if data.startswith(b"SIP/2.0 "):
                return True
    return False


def main(argv):
    if len(argv) >= 3 and argv[1] == "cpu":
        print(f"{cpu(int(argv[2])):.2f}")
    elif len(argv) >= 3 and argv[1] == "mem":
        print("%d %d %d" % mem(int(argv[2])))
    elif len(argv) >= 3 and argv[1] == "ping":
        timeout = float(argv[3]) if len(argv) > 3 else 10.0
        return 0 if ping(int(argv[2]), timeout) else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
