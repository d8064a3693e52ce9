#!/usr/bin/env node
// JsSIP (npm `jssip`) under Node, over Confab's SIP over WebSocket transport (RFC 7118), with
// the `ws` package standing in for the browser's WebSocket. Driven by
// crates/confab/tests/interop_clients.rs (ignored in a plain `cargo test`; run by
// scripts/interop-clients.sh). Two JsSIP user agents, alice and bob:
//
//   1. both REGISTER (digest authentication) over ws://;
//   2. alice sends bob a MESSAGE and bob receives it;
//   3. bob SUBSCRIBEs to alice's presence and gets the first NOTIFY (alice is registered and
//      publishes nothing yet: open);
//   4. alice PUBLISHes a PIDF document with the note given by --note (RFC 3903) and bob gets a
//      NOTIFY that carries it;
//   5. alice removes her publication (Expires: 0 with SIP-If-Match) and bob gets a NOTIFY
//      without the note;
//   6. bob unsubscribes (Expires: 0) and the final NOTIFY (Subscription-State: terminated)
//      ends the subscription; both unregister and stop.
//
// JsSIP has no PUBLISH of its own (3.13 has UA.subscribe() and UA.notify(), no publish): alice's
// PUBLISH is built and sent with JsSIP's request classes (lib/SIPMessage, lib/RequestSender),
// which put it on the same WebSocket and answer the digest challenge as for any other request.
//
// One line per step on standard output (REGISTERED, MESSAGE, SUBSCRIBED, PUBLISHED, NOTIFIED,
// UNPUBLISHED, CLEARED, TERMINATED, UNREGISTERED, OK); exit status 0 on success, 1 with the
// reason on standard error. Every wait is bounded, and so is the whole run.
//
//   node jssip_presence.js --ws ws://127.0.0.1:5066 --domain localhost \
//       --alice alice:PASSWORD --bob bob:PASSWORD --note "text to wait for"
'use strict';

const WebSocket = require('ws');
// JsSIP opens its sockets with the browser's global WebSocket(url, 'sip').
global.WebSocket = WebSocket;
const JsSIP = require('jssip');
const OutgoingRequest = require('jssip/lib/SIPMessage').OutgoingRequest;
const RequestSender = require('jssip/lib/RequestSender');

const STEP_MS = 10000;
const RUN_MS = 60000;

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) {
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const key of ['ws', 'domain', 'alice', 'bob', 'note']) {
    if (!out[key]) {
      throw new Error(`missing --${key}`);
    }
  }
  return out;
}

function say(...words) {
  process.stdout.write(words.join(' ') + '\n');
}

function within(what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    // `what` may be a function, to describe what had been seen when the time ran out.
    timer = setTimeout(() => {
      const described = typeof what === 'function' ? what() : what;
      reject(new Error(`timed out waiting for ${described}`));
    }, STEP_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function makeUa(url, domain, spec) {
  const colon = spec.indexOf(':');
  const user = spec.slice(0, colon);
  const password = spec.slice(colon + 1);
  const socket = new JsSIP.WebSocketInterface(url);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${user}@${domain}`,
    authorization_user: user,
    password,
    register: true,
    register_expires: 300,
    user_agent: 'JsSIP interop (confab)',
  });
  ua.user = user;
  return ua;
}

function register(ua) {
  return within(`${ua.user} to register`, new Promise((resolve, reject) => {
    ua.on('registered', () => resolve());
    ua.on('registrationFailed', (e) => reject(new Error(`${ua.user} registration failed: ${e.cause}`)));
    ua.start();
  }));
}

function xmlEscape(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// Enough of XML's entity references for the text of a <note> (no CDATA, no numeric ones).
function xmlUnescape(text) {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

// The texts of a PIDF document's notes (<note> of a tuple or the document, <dm:note> of a person,
// whatever the prefix), entity references resolved.
function notes(xml) {
  const found = [];
  for (const m of xml.matchAll(/<(?:[\w.-]+:)?note\b[^>]*>([^<]*)<\/(?:[\w.-]+:)?note>/g)) {
    found.push(xmlUnescape(m[1]));
  }
  return found;
}

// A PIDF document for `aor` (sip:user@domain): open, with `note` when given.
function pidf(aor, note) {
  const noteXml = note ? `<note>${xmlEscape(note)}</note>` : '';
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${aor}">`
    + `<tuple id="jssip"><status><basic>open</basic></status>${noteXml}</tuple>`
    + '</presence>';
}

// Sends one PUBLISH for the presence of the UA's own address-of-record, through JsSIP's request
// machinery, and resolves with the final response (the digest challenge is answered inside).
function publish(ua, { body, expires, etag }) {
  const aor = ua.configuration.uri.clone();
  const headers = ['Event: presence', `Expires: ${expires}`];
  if (etag) {
    headers.push(`SIP-If-Match: ${etag}`);
  }
  if (body) {
    headers.push('Content-Type: application/pidf+xml');
  }
  const request = new OutgoingRequest('PUBLISH', aor, ua, {}, headers, body || undefined);
  return within(`the answer to ${ua.user}'s PUBLISH`, new Promise((resolve, reject) => {
    const sender = new RequestSender(ua, request, {
      onRequestTimeout: () => reject(new Error('PUBLISH timed out')),
      onTransportError: () => reject(new Error('PUBLISH: transport error')),
      onReceiveResponse: (response) => {
        if (response.status_code >= 200) {
          resolve(response);
        }
      },
    });
    sender.send();
  }));
}

async function main() {
  const a = args();
  const alice = makeUa(a.ws, a.domain, a.alice);
  const bob = makeUa(a.ws, a.domain, a.bob);
  await register(alice);
  say('REGISTERED', 'alice');
  await register(bob);
  say('REGISTERED', 'bob');

  // 2. A MESSAGE alice -> bob.
  const received = within('bob to receive the MESSAGE', new Promise((resolve) => {
    bob.on('newMessage', (e) => {
      if (e.originator === 'remote') {
        resolve(e.request.body);
      }
    });
  }));
  const sent = within('the MESSAGE to be accepted', new Promise((resolve, reject) => {
    alice.sendMessage(`sip:${bob.user}@${a.domain}`, 'hello from JsSIP', {
      eventHandlers: {
        succeeded: (e) => resolve(e.response.status_code),
        failed: (e) => reject(new Error(`MESSAGE failed: ${e.cause}`)),
      },
    });
  }));
  const [status, body] = await Promise.all([sent, received]);
  say('MESSAGE', status, JSON.stringify(body));

  // 3. bob watches alice. JsSIP emits 'notify' only for NOTIFYs with a body; the final one
  // shows as 'terminated' with the code FINAL_NOTIFY_RECEIVED.
  const subscriber = bob.subscribe(`sip:${alice.user}@${a.domain}`, 'presence', 'application/pidf+xml', {
    expires: 120,
  });
  const notifies = [];
  let wake = null;
  subscriber.on('notify', (isFinal, request, notifyBody) => {
    notifies.push({ isFinal, body: notifyBody || '', state: request.getHeader('Subscription-State') });
    if (wake) {
      wake();
    }
  });
  const terminated = new Promise((resolve) => {
    subscriber.on('terminated', (code, reason) => resolve({ code, reason }));
  });
  // The first NOTIFY after `from` (an index into `notifies`) that passes `test`.
  const states = [];
  subscriber.on('pending', () => states.push('pending'));
  subscriber.on('active', () => states.push('active'));
  const seen = () => `subscription states ${JSON.stringify(states)}, NOTIFYs ${JSON.stringify(notifies)}`;
  const waitNotify = (what, from, test) => within(() => `${what} (${seen()})`, new Promise((resolve) => {
    const check = () => {
      const found = notifies.slice(from).find(test);
      if (found) {
        wake = null;
        resolve(found);
      } else {
        wake = check;
      }
    };
    check();
  }));
  subscriber.subscribe();
  const first = await waitNotify('the first NOTIFY', 0, (n) => n.body.includes('<basic>open</basic>'));
  say('SUBSCRIBED', first.state);

  // 4. alice publishes a note; bob sees it.
  let mark = notifies.length;
  const published = await publish(alice, { body: pidf(alice.configuration.uri.toString(), a.note), expires: 120 });
  const etag = published.getHeader('SIP-ETag');
  if (published.status_code !== 200 || !etag) {
    throw new Error(`PUBLISH got ${published.status_code} ${published.reason_phrase}, SIP-ETag ${etag}`);
  }
  say('PUBLISHED', published.status_code);
  const hasNote = (n) => notes(n.body).includes(a.note);
  const noted = await waitNotify(`a NOTIFY with the note ${a.note}`, mark, hasNote);
  say('NOTIFIED', noted.state);

  // 5. alice removes her publication; bob sees the note go.
  mark = notifies.length;
  const removed = await publish(alice, { expires: 0, etag });
  if (removed.status_code !== 200) {
    throw new Error(`PUBLISH removal got ${removed.status_code} ${removed.reason_phrase}`);
  }
  say('UNPUBLISHED', removed.status_code);
  const cleared = await waitNotify('a NOTIFY without the note', mark, (n) => !hasNote(n));
  say('CLEARED', cleared.state);

  // 6. Unsubscribe, unregister, stop.
  subscriber.terminate();
  const end = await within('the subscription to end', terminated);
  if (end.code !== subscriber.C.FINAL_NOTIFY_RECEIVED) {
    throw new Error(`the subscription ended with code ${end.code}, not with a final NOTIFY`);
  }
  say('TERMINATED', end.code);
  for (const ua of [alice, bob]) {
    await within(`${ua.user} to unregister`, new Promise((resolve) => {
      ua.on('unregistered', () => resolve());
      ua.unregister();
    }));
    say('UNREGISTERED', ua.user);
    ua.stop();
  }
  say('OK');
}

const overall = setTimeout(() => {
  process.stderr.write('jssip_presence: the whole run took too long\n');
  process.exit(1);
}, RUN_MS);

main().then(() => {
  clearTimeout(overall);
  // Sockets may linger a moment after stop(); nothing is left to wait for.
  setTimeout(() => process.exit(0), 200);
}, (e) => {
  process.stderr.write(`jssip_presence: ${e.message}\n`);
  process.exit(1);
});
