#!/usr/bin/env python3
"""Interop with PJSIP's Python binding (PyPI `pjsua2-python`) against a running `confab serve`.

Driven by crates/confab/tests/interop_clients.rs (ignored in a plain `cargo test`; run by
scripts/interop-clients.sh). Two pjsua2 accounts on 127.0.0.1 register with their passwords
through `--server`, exchange a MESSAGE each way, then (with `--peer`) send one to that user and
wait for one from it. Progress goes to standard output one line at a time, for the test to follow:

    REGISTERED <aor> <status>
    READY                       both registered, the peer may send now
    SENT <from> <to> <status>   final status of a MESSAGE sent
    RECEIVED <to> <from> <body> a MESSAGE delivered to an account
    OK                          all done

Exits 0 on success, 1 with a reason on standard error otherwise. Every wait is bounded.

    pjsua2_im.py --server 127.0.0.1:5060 --domain localhost \
        --account carol:PASSWORD --account dave:PASSWORD [--peer sip:alice@localhost]
"""

import argparse
import sys
import time

import pjsua2 as pj

WAIT = 10.0


def say(*words):
    print(*words, flush=True)


class Account(pj.Account):
    def __init__(self, user):
        super().__init__()
        self.user = user
        self.reg_status = None
        self.received = []  # (from, body)
        self.sent = {}  # to -> final status

    def onRegState(self, prm):
        if prm.code >= 200:
            self.reg_status = prm.code

    def onInstantMessage(self, prm):
        self.received.append((prm.fromUri, prm.msgBody))
        say("RECEIVED", self.user, prm.fromUri, prm.msgBody.replace("\n", " "))

    def onInstantMessageStatus(self, prm):
        self.sent[prm.toUri] = prm.code


class Endpoint:
    def __init__(self, log_level):
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-python interop (confab)"
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        cfg.medConfig.noVad = True
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
                raise SystemExit(f"pjsua2_im: timed out waiting for {what}")
            self.ep.libHandleEvents(20)


def make_account(server, domain, user, password):
    acc = Account(f"sip:{user}@{domain}")
    cfg = pj.AccountConfig()
    cfg.idUri = f"sip:{user}@{domain}"
    cfg.regConfig.registrarUri = f"sip:{server}"
    cfg.regConfig.timeoutSec = 300
    cfg.sipConfig.proxies.append(f"sip:{server};lr")
    cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    cfg.natConfig.contactRewriteUse = 0
    cfg.natConfig.viaRewriteUse = 0
    cfg.natConfig.sdpNatRewriteUse = 0
    cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc.create(cfg)
    return acc


def send(ep, acc, to, body):
    buddy_cfg = pj.BuddyConfig()
    buddy_cfg.uri = to
    buddy_cfg.subscribe = False
    buddy = pj.Buddy()
    buddy.create(acc, buddy_cfg)
    prm = pj.SendInstantMessageParam()
    prm.contentType = "text/plain"
    prm.content = body
    buddy.sendInstantMessage(prm)
    ep.poll_until(lambda: to in acc.sent, f"the final response to the MESSAGE {acc.user} -> {to}")
    status = acc.sent[to]
    say("SENT", acc.user, to, status)
    if status not in (200, 202):
        raise SystemExit(f"pjsua2_im: MESSAGE {acc.user} -> {to} got {status}")
    return buddy


def expect(ep, acc, sender, body):
    ep.poll_until(
        lambda: any(body == b and sender in f for f, b in acc.received),
        f"the MESSAGE {sender} -> {acc.user} {body!r} (got {acc.received})",
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="host:port of confab's UDP listener")
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--account", action="append", required=True, help="USER:PASSWORD (two)")
    ap.add_argument("--peer", help="a SIP URI to exchange one more MESSAGE with")
    ap.add_argument("--log-level", type=int, default=1)
    args = ap.parse_args()
    if len(args.account) != 2:
        ap.error("two --account USER:PASSWORD are needed")

    ep = Endpoint(args.log_level)
    try:
        accounts = []
        for spec in args.account:
            user, password = spec.split(":", 1)
            accounts.append(make_account(args.server, args.domain, user, password))
        for acc in accounts:
            ep.poll_until(lambda: acc.reg_status is not None, f"{acc.user} to register")
            say("REGISTERED", acc.user, acc.reg_status)
            if acc.reg_status != 200:
                raise SystemExit(f"pjsua2_im: {acc.user} failed to register: {acc.reg_status}")
        say("READY")
        a, b = accounts
        keep = [send(ep, a, b.user, "hello from pjsua2 " + a.user)]
        expect(ep, b, a.user, "hello from pjsua2 " + a.user)
        keep.append(send(ep, b, a.user, "and back from pjsua2 " + b.user))
        expect(ep, a, b.user, "and back from pjsua2 " + b.user)
        if args.peer:
            keep.append(send(ep, a, args.peer, "hello peer from pjsua2 " + a.user))
            expect(ep, a, args.peer.split(":", 1)[1], "hello pjsua2 from the peer")
        for acc in accounts:
            acc.setRegistration(False)
        for _ in range(10):
            ep.ep.libHandleEvents(20)
        say("OK")
        del keep
    finally:
        ep.ep.libDestroy()


if __name__ == "__main__":
    main()
