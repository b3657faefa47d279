// A Node.js push client, written as a team would with the usual packages: `ws` for WebSockets and
// `eventsource` (the WHATWG EventSource) for Server-Sent Events. It asks a server speaking
// pushbench's wire protocol (docs/PROTOCOL.md) for a push exactly as pushbench's drivers do, counts
// every message and prints one JSON line. `cargo bench --bench perf` holds pushbench's drivers
// against it (src/perf/peers.rs).
//
//   node client.js URL ws|sse MESSAGES PAYLOAD [batched|per_message]
//   node client.js http://127.0.0.1:8080 sse 100000 64 batched
//
// ws:  GET URL/ws upgraded; on open, one text frame {"op":"push","n":N,"payload":P,"flush":F,
//      "binary":false}; each pushed message is a text frame.
// sse: new EventSource(URL/sse?session=new); on its `session` event, POST URL/rpc?session=ID with
//      the same push request; each pushed message is an event.
// The clock runs from the push request to the last message, as in pushbench's push scenario.
// Every message is JSON-parsed; `seq` counts received, duplicated and out-of-order messages, and
// `data` must have PAYLOAD characters (otherwise the message counts as `bad`). Output:
//   {"client":"node","library":"ws 8.23.0","node":"v20.20.2","transport":"ws","flush":"batched",
//    "payload":64,"messages":100000,"received":100000,"lost":0,"duplicated":0,"out_of_order":0,
//    "bad":0,"elapsed_s":0.21,"msgs_per_s":476190.4,"error":null}
// Exit status: 0 when every message arrived once and in order, 1 otherwise (the line is still
// printed, with `error` saying why), 2 for bad arguments. Needs Node 20+ (eventsource 4).

'use strict';

const WebSocket = require('ws');
const { EventSource } = require('eventsource');

const USAGE = 'usage: node client.js URL ws|sse MESSAGES PAYLOAD [batched|per_message]';
// No message for this long ends the run with an error.
const IDLE_TIMEOUT_MS = Number(process.env.IDLE_TIMEOUT_MS || 10_000);

function usage(problem) {
  console.error(`client.js: ${problem}\n${USAGE}`);
  process.exit(2);
}

const [url, transport, messagesArg, payloadArg, flush = 'batched'] = process.argv.slice(2);
if (!url || !/^https?:\/\/[^/]+$/.test(url)) usage(`URL must be http://HOST:PORT, got ${JSON.stringify(url)}`);
if (transport !== 'ws' && transport !== 'sse') usage(`transport must be ws or sse, got ${JSON.stringify(transport)}`);
const n = Number(messagesArg);
if (!Number.isInteger(n) || n < 1 || n > 100_000_000) usage(`MESSAGES must be 1..100000000, got ${JSON.stringify(messagesArg)}`);
const payload = Number(payloadArg);
if (!Number.isInteger(payload) || payload < 0 || payload > 16 * 1024 * 1024) usage(`PAYLOAD must be 0..16777216, got ${JSON.stringify(payloadArg)}`);
if (flush !== 'batched' && flush !== 'per_message') usage(`flush must be batched or per_message, got ${JSON.stringify(flush)}`);

const request = JSON.stringify({ op: 'push', n, payload, flush, binary: false });
const seen = new Uint8Array(n);
const counts = { received: 0, duplicated: 0, out_of_order: 0, bad: 0 };
let highest = -1;
let firstBad = null;
let started = null; // process.hrtime.bigint() when the push request went out
let done = false;
let close = () => {};

function onMessage(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    msg = null;
  }
  const seq = msg && msg.seq;
  if (!Number.isInteger(seq) || seq < 0 || seq >= n || typeof msg.data !== 'string' || msg.data.length !== payload) {
    counts.bad++;
    if (firstBad === null) firstBad = String(text).slice(0, 200);
    return;
  }
  if (seen[seq]) {
    counts.duplicated++;
    return;
  }
  seen[seq] = 1;
  counts.received++;
  if (seq < highest) counts.out_of_order++;
  else highest = seq;
  if (counts.received === n) finish(null);
}

function finish(error) {
  if (done) return;
  done = true;
  const elapsed = started === null ? 0 : Number(process.hrtime.bigint() - started) / 1e9;
  const lost = n - counts.received;
  if (!error && firstBad !== null) error = `${counts.bad} messages that are not a pushed message, the first: ${firstBad}`;
  if (!error && (lost || counts.duplicated || counts.out_of_order)) error = 'messages lost, duplicated or out of order';
  const library = transport === 'ws' ? `ws ${require('ws/package.json').version}` : `eventsource ${require('eventsource/package.json').version}`;
  console.log(JSON.stringify({
    client: 'node',
    library,
    node: process.version,
    transport,
    flush,
    payload,
    messages: n,
    received: counts.received,
    lost,
    duplicated: counts.duplicated,
    out_of_order: counts.out_of_order,
    bad: counts.bad,
    elapsed_s: elapsed,
    msgs_per_s: elapsed > 0 ? counts.received / elapsed : null,
    error,
  }));
  close();
  process.exit(error ? 1 : 0);
}

// The idle check reads a counter once a second, so receiving costs nothing extra.
let lastReceived = -1;
setInterval(() => {
  const now = counts.received + counts.duplicated + counts.bad;
  if (now === lastReceived) finish(`no message for ${IDLE_TIMEOUT_MS} ms (${counts.received} of ${n} received)`);
  lastReceived = now;
}, IDLE_TIMEOUT_MS).unref();

if (transport === 'ws') {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
  close = () => ws.terminate();
  ws.on('open', () => {
    started = process.hrtime.bigint();
    ws.send(request);
  });
  ws.on('message', (data) => onMessage(data.toString()));
  ws.on('error', (e) => finish(`WebSocket error: ${e.message}`));
  ws.on('close', (code) => finish(`WebSocket closed (${code}) before the last message`));
} else {
  const es = new EventSource(`${url}/sse?session=new`);
  close = () => es.close();
  es.addEventListener('session', (event) => {
    started = process.hrtime.bigint();
    fetch(`${url}/rpc?session=${encodeURIComponent(event.data)}`, { method: 'POST', body: request })
      .then((res) => {
        if (res.status !== 202) finish(`POST /rpc answered ${res.status}`);
      })
      .catch((e) => finish(`POST /rpc: ${e.message}`));
  });
  es.onmessage = (event) => onMessage(event.data);
  // EventSource would reconnect (a new session, a new push): end the run instead.
  es.onerror = (event) => finish(`EventSource error: ${event.message || 'the stream closed'}`);
}
