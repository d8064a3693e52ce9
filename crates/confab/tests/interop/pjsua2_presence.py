#!/usr/bin/env python3
"""Presence interop with PJSIP's Python binding (PyPI `pjsua2-python`) against `confab serve`.

Driven by crates/confab/tests/interop_clients.rs (ignored in a plain `cargo test`; run by
scripts/interop-clients.sh). Two pjsua2 accounts on 127.0.0.1 register through `--server`;
the publisher publishes its status (PUBLISH, RFC 3903: online, busy, with a note); the watcher
subscribes to it as a buddy (SUBSCRIBE/NOTIFY, RFC 3856) and must see that status, then a
changed note, then the publisher going offline when it unpublishes. Progress goes to standard
output one line at a time:

    REGISTERED <aor> <status>
    SEEN <status-text> <activity> <note>    a buddy state the watcher reached
    OK                                      all done

Exits 0 on success, 1 with a reason on standard error otherwise. Every wait is bounded.

    pjsua2_presence.py --server 127.0.0.1:5060 --domain localhost \
        --publisher carol:PASSWORD --watcher dave:PASSWORD
"""

import argparse
import time

import pjsua2 as pj

WAIT = 15.0


def say(*words):
    print(*words, flush=True)


class Account(pj.Account):
    def __init__(self, user):
        super().__init__()
        self.user = user
        self.reg_status = None

    def onRegState(self, prm):
        if prm.code >= 200:
            self.reg_status = prm.code


class Buddy(pj.Buddy):
    def __init__(self):
        super().__init__()
        self.states = []  # (status, activity, note, sub state)

    def onBuddyState(self):
        info = self.getInfo()
        s = info.presStatus
        self.states.append((s.status, s.activity, s.note, info.subStateName))


class Endpoint:
    def __init__(self, log_level):
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-python presence interop (confab)"
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        tcfg.port = 0
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.audDevManager().setNullDev()
        self.ep.libStart()

    def poll_until(self, done, what):
        deadline = time.monotonic() + WAIT
        while not done():
            if time.monotonic() >= deadline:
                raise SystemExit(f"pjsua2_presence: timed out waiting for {what}")
            self.ep.libHandleEvents(20)


def make_account(server, domain, user, password, publish):
    acc = Account(f"sip:{user}@{domain}")
    cfg = pj.AccountConfig()
    cfg.idUri = f"sip:{user}@{domain}"
    cfg.regConfig.registrarUri = f"sip:{server}"
    cfg.regConfig.timeoutSec = 300
    cfg.sipConfig.proxies.append(f"sip:{server};lr")
    cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    cfg.presConfig.publishEnabled = publish
    cfg.natConfig.contactRewriteUse = 0
    cfg.natConfig.viaRewriteUse = 0
    cfg.natConfig.sdpNatRewriteUse = 0
    cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc.create(cfg)
    return acc


def status(acc, online, activity, note):
    ps = pj.PresenceStatus()
    ps.status = pj.PJSUA_BUDDY_STATUS_ONLINE if online else pj.PJSUA_BUDDY_STATUS_OFFLINE
    ps.activity = activity
    ps.note = note
    acc.setOnlineStatus(ps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="host:port of confab's UDP listener")
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--publisher", required=True, help="USER:PASSWORD")
    ap.add_argument("--watcher", required=True, help="USER:PASSWORD")
    ap.add_argument("--log-level", type=int, default=1)
    args = ap.parse_args()

    ep = Endpoint(args.log_level)
    try:
        user, password = args.publisher.split(":", 1)
        publisher = make_account(args.server, args.domain, user, password, True)
        user, password = args.watcher.split(":", 1)
        watcher = make_account(args.server, args.domain, user, password, False)
        for acc in (publisher, watcher):
            ep.poll_until(lambda: acc.reg_status is not None, f"{acc.user} to register")
            say("REGISTERED", acc.user, acc.reg_status)
            if acc.reg_status != 200:
                raise SystemExit(f"pjsua2_presence: {acc.user} failed to register: {acc.reg_status}")

        status(publisher, True, pj.PJRPID_ACTIVITY_BUSY, "In a meeting until 3")
        buddy = Buddy()
        cfg = pj.BuddyConfig()
        cfg.uri = publisher.user
        cfg.subscribe = True
        buddy.create(watcher, cfg)

        def reached(online, activity, note):
            want = pj.PJSUA_BUDDY_STATUS_ONLINE if online else pj.PJSUA_BUDDY_STATUS_OFFLINE

            def check():
                for st, act, n, sub in buddy.states:
                    if st == want and (activity is None or act == activity) and (note is None or n == note):
                        return True
                return False

            ep.poll_until(check, f"{publisher.user} seen {'online' if online else 'offline'} "
                                 f"activity={activity} note={note!r} (seen {buddy.states})")
            say("SEEN", "online" if online else "offline", activity, note)

        reached(True, pj.PJRPID_ACTIVITY_BUSY, "In a meeting until 3")
        status(publisher, True, pj.PJRPID_ACTIVITY_UNKNOWN, "Back at my desk")
        reached(True, None, "Back at my desk")
        status(publisher, False, pj.PJRPID_ACTIVITY_UNKNOWN, "")
        reached(False, None, None)
        say("OK")
    finally:
        ep.ep.libDestroy()


if __name__ == "__main__":
    main()
