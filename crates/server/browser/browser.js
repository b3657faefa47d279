// pushbench's browser client. The page's query string names one case:
//   run=ID scenario=study|push|latency transport=ws|sse|longpoll timeout_ms=T and
//   study: n, block_size; push: n, payload, flush; latency: n, interval_us, payload.
// It speaks docs/PROTOCOL.md with the browser's own WebSocket, EventSource and fetch, counts
// received, duplicated and out-of-order messages as the Rust drivers do (a reply never asked
// for is an error), times with performance.now(), and posts the result as JSON to
// POST /bench/result?run=ID, errors included, so the runner never waits for a silent page.
"use strict";

const query = new URLSearchParams(location.search);
const ALNUM = /^[A-Z0-9]*$/;

function status(text) {
  document.getElementById("status").textContent = text;
}

function param(name) {
  const value = query.get(name);
  if (value === null || value === "") throw new Error(`page parameter \`${name}\` is missing`);
  return value;
}

function count(name) {
  const value = Number(param(name));
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`page parameter \`${name}\`: expected a count, got ${query.get(name)}`);
  }
  return value;
}

class Timeout extends Error {}

// Counts messages by sequence number, like the runner's SeqTracker.
class Tracker {
  constructor() {
    this.seen = [];
    this.highest = -1;
    this.sent = 0;
    this.received = 0;
    this.duplicated = 0;
    this.outOfOrder = 0;
  }
  send() {
    this.sent += 1;
    this.seen.push(false);
  }
  observe(seq) {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= this.seen.length) {
      throw new Error(`message ${seq}, which was never sent`);
    }
    if (this.seen[seq]) {
      this.duplicated += 1;
      return;
    }
    this.seen[seq] = true;
    this.received += 1;
    if (seq < this.highest) this.outOfOrder += 1;
    this.highest = Math.max(this.highest, seq);
  }
}

// A reply-shaped message, checked: seq, ts and `len` characters of A-Z0-9 in data.
function decode(text, len) {
  let message;
  try {
    message = JSON.parse(text);
  } catch (e) {
    throw new Error(`malformed message: ${e.message} (starts ${JSON.stringify(text.slice(0, 60))})`);
  }
  if (typeof message.data !== "string" || message.data.length !== len || !ALNUM.test(message.data)) {
    const got = typeof message.data === "string" ? message.data.length : "no";
    throw new Error(`message ${message.seq}: data has ${got} characters, expected ${len} of A-Z0-9`);
  }
  return message;
}

// Messages in arrival order for a sequential reader; `fail` ends every wait.
class Inbox {
  constructor() {
    this.items = [];
    this.waiter = null;
    this.error = null;
  }
  push(text) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(text);
    } else {
      this.items.push(text);
    }
  }
  fail(error) {
    this.error = this.error || error;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(error);
    }
  }
  next(timeoutMs) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Timeout(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }
}

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// Upstream for SSE and long polling: one POST /rpc per message, answered 202.
async function rpc(session, text) {
  const answer = await fetch(`/rpc?session=${encodeURIComponent(session)}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: text,
  });
  if (answer.status !== 202) {
    throw new Error(`POST /rpc: ${answer.status} ${await answer.text()}`);
  }
}

// Each opener resolves to {send(text), close()} once the connection is usable; `onMessage`
// gets every message's text, `onError` the first failure. `topic` subscribes instead of
// opening a session for calls.
const OPENERS = {
  ws(onMessage, onError, topic) {
    return new Promise((resolve, reject) => {
      const path = topic === undefined ? "/ws" : `/ws?topic=${encodeURIComponent(topic)}`;
      const ws = new WebSocket(wsUrl(path));
      let open = false;
      let acknowledged = topic === undefined;
      const session = { send: (text) => ws.send(text), close: () => ws.close() };
      ws.onopen = () => {
        open = true;
        if (acknowledged) resolve(session);
      };
      ws.onmessage = (event) => {
        if (!acknowledged) {
          acknowledged = true;
          resolve(session);
          return;
        }
        onMessage(event.data);
      };
      ws.onerror = () => {
        const e = new Error(`WebSocket ${path}: error`);
        if (open) onError(e); else reject(e);
      };
      ws.onclose = (event) => {
        const e = new Error(`WebSocket ${path} closed (code ${event.code}${event.reason ? ", " + event.reason : ""})`);
        if (open) onError(e); else reject(e);
      };
    });
  },

  sse(onMessage, onError, topic) {
    return new Promise((resolve, reject) => {
      const path = topic === undefined ? "/sse?session=new" : `/sse?topic=${encodeURIComponent(topic)}`;
      const source = new EventSource(path);
      let session = null;
      source.addEventListener("session", (event) => {
        session = event.data;
        resolve({
          send: (text) => rpc(session, text),
          close: () => source.close(),
        });
      });
      source.onmessage = (event) => onMessage(event.data);
      // EventSource reconnects on its own after an error; a reconnection would be a new
      // session, so the case ends here instead.
      source.onerror = () => {
        source.close();
        const e = new Error(`EventSource ${path}: connection failed or closed`);
        if (session === null) reject(e); else onError(e);
      };
    });
  },

  async longpoll(onMessage, onError, topic) {
    const path = topic === undefined ? "/poll" : `/poll?topic=${encodeURIComponent(topic)}`;
    const opened = await fetch(path);
    if (opened.status !== 200) throw new Error(`GET ${path}: ${opened.status} ${await opened.text()}`);
    const session = (await opened.json()).session;
    if (typeof session !== "string") throw new Error(`GET ${path}: no session in the answer`);
    let open = true;
    (async () => {
      while (open) {
        const answer = await fetch(`/poll?session=${encodeURIComponent(session)}`);
        if (!open) return;
        if (answer.status === 204) continue;
        if (answer.status !== 200) {
          throw new Error(`GET /poll: ${answer.status} ${await answer.text()}`);
        }
        const body = await answer.text();
        for (const line of body.split("\n")) {
          if (line !== "") onMessage(line);
        }
      }
    })().catch((e) => { if (open) onError(e); });
    return {
      send: (text) => rpc(session, text),
      close: () => {
        open = false;
        fetch(`/poll?session=${encodeURIComponent(session)}`, { method: "DELETE" }).catch(() => {});
      },
    };
  },
};

function opener(transport) {
  const open = OPENERS[transport];
  if (!open) throw new Error(`transport \`${transport}\` has no browser client (ws, sse, longpoll)`);
  return open;
}

function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function result(tracker) {
  return {
    user_agent: navigator.userAgent,
    sent: tracker.sent,
    received: tracker.received,
    duplicated: tracker.duplicated,
    out_of_order: tracker.outOfOrder,
    elapsed_ms: 0,
    connect_ms: 0,
    bytes_loaded: 0,
    latencies_us: [],
    clock_uncertainty_us: null,
    error: null,
  };
}

// The study: connect, then n sequential calls; the clock runs from before the connection to
// the last reply. Three calls in a row without a reply end the case, as in the Rust runner.
async function study(out, tracker, transport, timeoutMs) {
  const n = count("n");
  const block = count("block_size");
  const inbox = new Inbox();
  const start = performance.now();
  const session = await withTimeout(
    opener(transport)((text) => inbox.push(text), (e) => inbox.fail(e)),
    timeoutMs,
    "connect",
  );
  out.connect_ms = performance.now() - start;
  let timeouts = 0;
  try {
    for (let seq = 0; seq < n; seq++) {
      const sentAt = performance.now();
      await session.send(`{"seq":${seq},"blockSize":${block}}`);
      tracker.send();
      for (;;) {
        let text;
        try {
          text = await inbox.next(timeoutMs);
        } catch (e) {
          if (!(e instanceof Timeout)) throw e;
          timeouts += 1;
          if (timeouts >= 3) {
            throw new Error(`no reply to ${timeouts} consecutive calls (up to call ${seq}) within ${timeoutMs} ms each`);
          }
          break;
        }
        out.bytes_loaded += text.length;
        const reply = decode(text, block);
        tracker.observe(reply.seq);
        if (reply.seq === seq) {
          out.latencies_us.push((performance.now() - sentAt) * 1000);
          timeouts = 0;
          break;
        }
      }
    }
  } finally {
    out.elapsed_ms = performance.now() - start;
    session.close();
  }
}

// Push: ask for n messages and receive them all; the clock runs from the request to the last
// message (connect excluded, as in the Rust runner). No latency: the messages' `ts` is on the
// server's clock, and a per-message offset error would swamp microsecond figures.
async function push(out, tracker, transport, timeoutMs) {
  const n = count("n");
  const payload = count("payload");
  const flush = param("flush");
  let done;
  let failed;
  const finished = new Promise((resolve, reject) => { done = resolve; failed = reject; });
  const onMessage = (text) => {
    try {
      tracker.observe(decode(text, payload).seq);
      if (tracker.received === n) done();
    } catch (e) {
      failed(e);
    }
  };
  const start = performance.now();
  const session = await withTimeout(opener(transport)(onMessage, failed), timeoutMs, "connect");
  out.connect_ms = performance.now() - start;
  const started = performance.now();
  let last = -1;
  const watchdog = setInterval(() => {
    if (tracker.received === last) {
      failed(new Error(`no message for ${timeoutMs} ms after ${tracker.received} of ${n}`));
    }
    last = tracker.received;
  }, timeoutMs);
  try {
    for (let i = 0; i < n; i++) tracker.send();
    await session.send(`{"op":"push","n":${n},"payload":${payload},"flush":"${flush}","binary":false}`);
    await finished;
  } finally {
    out.elapsed_ms = performance.now() - started;
    clearInterval(watchdog);
    session.close();
  }
}

// The offset from performance.now() (ms) to the server's CLOCK_MONOTONIC (ms), from the
// reading with the shortest round trip over a WebSocket to /bench/clock/ws (a fetch's round
// trip is several times longer); half that round trip bounds the offset's error.
function clockOffset(timeoutMs) {
  const readings = 50;
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl("/bench/clock/ws"));
    let best = null;
    let sentAt = 0;
    let left = readings;
    const ask = () => { sentAt = performance.now(); ws.send("t"); };
    ws.onopen = ask;
    ws.onmessage = (event) => {
      const after = performance.now();
      const serverMs = JSON.parse(event.data).mono_ns / 1e6;
      const rtt = after - sentAt;
      if (best === null || rtt < best.rtt) best = { rtt, offset: serverMs - (sentAt + after) / 2 };
      left -= 1;
      if (left > 0) {
        ask();
      } else {
        ws.onclose = null;
        ws.close();
        resolve(best);
      }
    };
    ws.onerror = () => reject(new Error("WebSocket /bench/clock/ws: error"));
    ws.onclose = (event) => reject(new Error(`WebSocket /bench/clock/ws closed (code ${event.code})`));
  }), timeoutMs, "clock offset");
}

// Latency: subscribe to a topic, start a paced broadcast of n messages, and take each
// message's receipt time (on the server's clock, through the offset) minus its scheduled
// send time `ts`.
async function latency(out, tracker, transport, timeoutMs) {
  const n = count("n");
  const payload = count("payload");
  const interval = count("interval_us");
  const topic = param("topic");
  const clock = await clockOffset(timeoutMs);
  out.clock_uncertainty_us = (clock.rtt / 2) * 1000;
  let done;
  let failed;
  const finished = new Promise((resolve, reject) => { done = resolve; failed = reject; });
  for (let i = 0; i < n; i++) tracker.send();
  const onMessage = (text) => {
    const now = performance.now();
    try {
      const message = decode(text, payload);
      tracker.observe(message.seq);
      out.latencies_us.push(((now + clock.offset) * 1e6 - message.ts) / 1000);
      if (tracker.received === n) done();
    } catch (e) {
      failed(e);
    }
  };
  const start = performance.now();
  const session = await withTimeout(opener(transport)(onMessage, failed, topic), timeoutMs, "subscribe");
  out.connect_ms = performance.now() - start;
  const started = performance.now();
  let last = -1;
  const watchdog = setInterval(() => {
    if (tracker.received === last) {
      failed(new Error(`no message for ${timeoutMs} ms after ${tracker.received} of ${n}`));
    }
    last = tracker.received;
  }, timeoutMs);
  try {
    const plan = { topic, subscribers: 1, n, interval_us: interval, payload, wait_ms: timeoutMs };
    const answer = await fetch("/broadcast", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(plan),
    });
    if (answer.status !== 202 && answer.status !== 200) {
      throw new Error(`POST /broadcast: ${answer.status} ${await answer.text()}`);
    }
    await finished;
  } finally {
    out.elapsed_ms = performance.now() - started;
    clearInterval(watchdog);
    session.close();
  }
}

const SCENARIOS = { study, push, latency };

async function main() {
  const run = query.get("run") || "";
  const tracker = new Tracker();
  const out = result(tracker);
  try {
    const scenario = param("scenario");
    const transport = param("transport");
    const timeoutMs = count("timeout_ms");
    const body = SCENARIOS[scenario];
    if (!body) throw new Error(`scenario \`${scenario}\` has no browser client (study, push, latency)`);
    status(`running ${scenario} over ${transport}`);
    await body(out, tracker, transport, timeoutMs);
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
  }
  Object.assign(out, {
    sent: tracker.sent,
    received: tracker.received,
    duplicated: tracker.duplicated,
    out_of_order: tracker.outOfOrder,
  });
  status(out.error ? `failed: ${out.error}` : "done");
  const answer = await fetch(`/bench/result?run=${encodeURIComponent(run)}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(out),
  });
  status(`${document.getElementById("status").textContent}; result posted: ${answer.status}`);
}

main();
