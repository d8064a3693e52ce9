#!/usr/bin/env node
// JsSIP (npm `jssip`) under Node, over Confab's SIP over WebSocket transport (RFC 7118), with
// the `ws` package standing in for the browser's WebSocket. Driven by
// crates/confab/tests/interop_clients.rs (ignored in a plain `cargo test`; run by
// scripts/interop-clients.sh). Two JsSIP user agents, alice and bob:
//
//   1. both REGISTER (digest authentication) over ws://;
//   2. alice sends bob a MESSAGE and bob receives it;
//   3. bob SUBSCRIBEs to alice's presence and gets the first NOTIFY (alice is registered and
//      publishes nothing: available);
//   4. after printing SUBSCRIBED, bob waits for a NOTIFY whose document carries the note given
//      with --note (the test publishes it for alice meanwhile);
//   5. bob unsubscribes and sees the subscription terminated; both unregister and stop.
//
// One line per step on standard output (REGISTERED, MESSAGE, SUBSCRIBED, NOTIFIED, TERMINATED,
// OK); exit status 0 on success, 1 with the reason on standard error. Every wait is bounded.
//
//   node jssip_presence.js --ws ws://127.0.0.1:5066 --domain localhost \
//       --alice alice:PASSWORD --bob bob:PASSWORD --note "text to wait for"
'use strict';

const WebSocket = require('ws');
// JsSIP opens its sockets with the browser's global WebSocket(url, 'sip').
global.WebSocket = WebSocket;
const JsSIP = require('jssip');

const STEP_MS = 15000;

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
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function makeUa(url, domain, spec) {
  const [user, password] = spec.split(':');
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
    alice.sendMessage(`sip:bob@${a.domain}`, 'hello from JsSIP', {
      eventHandlers: {
        succeeded: (e) => resolve(e.response.status_code),
        failed: (e) => reject(new Error(`MESSAGE failed: ${e.cause}`)),
      },
    });
  }));
  const [status, body] = await Promise.all([sent, received]);
  say('MESSAGE', status, JSON.stringify(body));

  // 3. bob watches alice.
  const subscriber = bob.subscribe(`sip:alice@${a.domain}`, 'presence', 'application/pidf+xml', {
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
  const waitNotify = (what, test) => within(what, new Promise((resolve) => {
    const check = () => {
      const found = notifies.find(test);
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
  const first = await waitNotify('the first NOTIFY', (n) => n.body.includes('<basic>open</basic>'));
  say('SUBSCRIBED', first.state);

  // 4. The test publishes the note for alice now.
  const noted = await waitNotify(`a NOTIFY with the note ${a.note}`, (n) => n.body.includes(a.note));
  say('NOTIFIED', noted.state);

  // 5. Unsubscribe, unregister, stop.
  subscriber.terminate();
  const end = await within('the subscription to end', terminated);
  say('TERMINATED', end.code);
  for (const ua of [alice, bob]) {
    await within(`${ua.user} to unregister`, new Promise((resolve) => {
      ua.on('unregistered', () => resolve());
      ua.unregister();
    }));
    ua.stop();
  }
  say('OK');
}

const overall = setTimeout(() => {
  process.stderr.write('jssip_presence: the whole run took too long\n');
  process.exit(1);
}, 8 * STEP_MS);

main().then(() => {
  clearTimeout(overall);
  // Sockets may linger a moment after stop(); nothing is left to wait for.
  setTimeout(() => process.exit(0), 200);
}, (e) => {
  process.stderr.write(`jssip_presence: ${e.message}\n`);
  process.exit(1);
});
