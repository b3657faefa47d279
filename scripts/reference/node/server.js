// A Node.js server speaking pushbench's wire protocol (docs/PROTOCOL.md), written the way a team
// following the common tutorials would: Express for HTTP, the `ws` package attached to the same
// http server, `res.write` for Server-Sent Events, error-handling middleware, and `net` for the
// raw-TCP floor. pushbench measures it with the same drivers as its own server:
//
//   node server.js [PORT]          # HTTP on PORT (default 8090; 0: any), raw TCP on TCP_PORT or PORT+1
//   pushbench run study --quick --target http://127.0.0.1:8090 --tcp-target 127.0.0.1:8091 \
//       --server-label node-express-ws
//
// Implemented: /ws (calls, push requests, ?topic= subscribers), /sse + POST /rpc, /poll (+ DELETE),
// POST /broadcast, POST /stall and the raw-TCP floor. Not implemented: /feed/* (the reconnect
// scenario), which answers 404 so pushbench names the missing endpoint.

'use strict';

const http = require('node:http');
const net = require('node:net');
const express = require('express');
const { WebSocketServer } = require('ws');

const PORT = Number(process.argv[2] || process.env.PORT || 8090);
const TCP_PORT = Number(process.env.TCP_PORT || (PORT === 0 ? 0 : PORT + 1));
const HOST = process.env.HOST || '127.0.0.1';

const MAX_SIZE = 16 * 1024 * 1024; // blockSize and payload
const MAX_PUSH = 100_000_000;
const MAX_BROADCAST = 10_000_000;
const BATCH_BYTES = 64 * 1024; // "batched": as many ready messages as fit in 64 KiB per write
const POLL_WAIT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Messages

// Nanoseconds on CLOCK_MONOTONIC (libuv's hrtime), the clock pushbench's drivers read. As a JS
// number this is exact while the host has been up less than 104 days (2^53 ns).
const monoNs = () => Number(process.hrtime.bigint());

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
function randomData(length) {
  let out = '';
  for (let i = 0; i < length; i++) {
    out += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  }
  return out;
}

class BadMessage extends Error {
  constructor(message) {
    super(message);
    this.status = 400;
  }
}

const isCount = (v, max) => Number.isInteger(v) && v >= 0 && v <= max;

// Parses a call or push request; throws BadMessage naming what is wrong.
function parseClientMessage(text) {
  let msg;
  try {
    msg = typeof text === 'string' ? JSON.parse(text) : text;
  } catch (e) {
    throw new BadMessage(`not JSON: ${e.message}`);
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    throw new BadMessage('expected a JSON object');
  }
  if (msg.op === 'push') {
    if (!isCount(msg.n, MAX_PUSH)) throw new BadMessage('push: bad n');
    if (!isCount(msg.payload, MAX_SIZE)) throw new BadMessage('push: bad payload');
    if (msg.flush !== undefined && msg.flush !== 'per_message' && msg.flush !== 'batched') {
      throw new BadMessage('push: flush must be per_message or batched');
    }
    return { kind: 'push', n: msg.n, payload: msg.payload, flush: msg.flush || 'per_message', binary: !!msg.binary };
  }
  if (msg.op !== undefined && msg.op !== 'call') throw new BadMessage(`unknown op ${JSON.stringify(msg.op)}`);
  if (!isCount(msg.seq, Number.MAX_SAFE_INTEGER)) throw new BadMessage('call: bad seq');
  if (!isCount(msg.blockSize, MAX_SIZE)) throw new BadMessage('call: bad blockSize');
  return { kind: 'call', seq: msg.seq, blockSize: msg.blockSize };
}

const reply = (seq, length, ts = monoNs()) => JSON.stringify({ seq, ts, data: randomData(length) });

// A binary pushed message: seq and ts as big-endian u64, then `payload` random bytes.
function binaryMessage(seq, payload) {
  const buf = Buffer.allocUnsafe(16 + payload);
  buf.writeBigUInt64BE(BigInt(seq), 0);
  buf.writeBigUInt64BE(process.hrtime.bigint(), 8);
  for (let i = 16; i < buf.length; i++) buf[i] = Math.floor(Math.random() * 256);
  return buf;
}

// Streams a push request's messages through `out`: `send(message)` writes one message,
// `batch(messages)` writes several in one write. Yields to the event loop between batches so
// other clients are still served while a long push runs.
function streamPush(req, out) {
  let seq = 0;
  const make = (i) => (req.binary ? binaryMessage(i, req.payload) : reply(i, req.payload));
  const step = () => {
    if (out.closed()) return;
    if (req.flush === 'per_message') {
      const end = Math.min(req.n, seq + 256);
      for (; seq < end; seq++) out.send(make(seq));
    } else {
      const messages = [];
      let bytes = 0;
      while (seq < req.n && (messages.length === 0 || bytes < BATCH_BYTES)) {
        const m = make(seq++);
        bytes += m.length;
        messages.push(m);
      }
      out.batch(messages);
    }
    if (seq < req.n) setImmediate(step);
  };
  step();
}

// ---------------------------------------------------------------------------------------------
// Broadcast topics: subscribers of every transport, and the paced sender of POST /broadcast

const topics = new Map(); // name -> { subscribers: Set<sink>, plan, started, ended, waiting }

function topic(name) {
  let t = topics.get(name);
  if (!t) {
    t = { subscribers: new Set(), plan: null, started: false, ended: false, waiting: null };
    topics.set(name, t);
  }
  return t;
}

// A sink is { send(text), end() }. Returns an unsubscribe function.
function subscribe(name, sink) {
  const t = topic(name);
  if (t.ended) {
    sink.end();
    return () => {};
  }
  t.subscribers.add(sink);
  if (t.plan && !t.started && t.subscribers.size >= t.plan.subscribers) startBroadcast(name);
  return () => t.subscribers.delete(sink);
}

function endTopic(name) {
  const t = topic(name);
  t.ended = true;
  for (const sink of t.subscribers) sink.end();
  t.subscribers.clear();
  // Keep the ended marker a while, so late subscribers are closed rather than left waiting.
  setTimeout(() => topics.delete(name), 60_000).unref();
}

function startBroadcast(name) {
  const t = topic(name);
  if (t.started) return;
  t.started = true;
  clearTimeout(t.waiting);
  const plan = t.plan;
  const t0 = monoNs();
  const intervalNs = plan.interval_us * 1000;
  let i = 0;
  const tick = () => {
    // Send every message that is due (a late server catches up), each stamped with its due time.
    while (i < plan.n && monoNs() >= t0 + i * intervalNs) {
      if (plan.stall_before === i && plan.stall_ms) {
        busyWait(plan.stall_ms);
      }
      const text = reply(i, plan.payload, t0 + i * intervalNs);
      for (const sink of t.subscribers) sink.send(text);
      i++;
    }
    if (i >= plan.n) {
      endTopic(name);
      return;
    }
    const waitMs = Math.max(0, (t0 + i * intervalNs - monoNs()) / 1e6);
    setTimeout(tick, waitMs);
  };
  tick();
}

function busyWait(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // the stall is the point
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions of SSE and long polling (upstream calls arrive as POST /rpc?session=ID)

const sessions = new Map(); // id -> { kind, deliver(text), deliverBatch(texts), closed }
let nextSession = 1;
const newSessionId = () => `s${nextSession++}-${Math.random().toString(36).slice(2, 10)}`;

function handleUpstream(session, msg) {
  if (msg.kind === 'call') {
    session.deliver(reply(msg.seq, msg.blockSize));
    return;
  }
  const encode = (m) => (Buffer.isBuffer(m) ? m.toString('base64') : m);
  streamPush(msg, {
    closed: () => session.closed,
    send: (m) => session.deliver(encode(m)),
    batch: (ms) => session.deliverBatch(ms.map(encode)),
  });
}

// SSE: one event per message, `id:` counting from 1 (0 is the session event).
function sseSession(res) {
  let id = 0;
  const event = (text) => `id: ${++id}\ndata: ${text}\n\n`;
  return {
    kind: 'sse',
    closed: false,
    deliver(text) {
      if (!this.closed) res.write(event(text));
    },
    deliverBatch(texts) {
      if (!this.closed) res.write(texts.map(event).join(''));
    },
  };
}

// Long polling: messages queue until a poll takes them.
function pollSession() {
  return {
    kind: 'poll',
    closed: false, // no more messages will come
    queue: [],
    batched: false,
    waiter: null, // the outstanding poll's response
    deliver(text) {
      this.batched = false; // per_message: one message per poll response
      this.queue.push(text);
      this.flush();
    },
    deliverBatch(texts) {
      this.batched = true; // batched: every ready message (up to 64 KiB) per response
      this.queue.push(...texts);
      this.flush();
    },
    flush() {
      const res = this.waiter;
      if (!res) return;
      if (this.queue.length === 0) {
        if (this.closed) {
          this.waiter = null;
          clearTimeout(res.pollTimer);
          res.status(410).end();
        }
        return;
      }
      this.waiter = null;
      clearTimeout(res.pollTimer);
      let count = 1;
      if (this.batched) {
        let bytes = 0;
        count = 0;
        while (count < this.queue.length && (count === 0 || bytes < BATCH_BYTES)) {
          bytes += this.queue[count].length + 1;
          count++;
        }
      }
      const lines = this.queue.splice(0, count);
      res.status(200).type('application/x-ndjson').send(lines.join('\n') + '\n');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP: Express

const app = express();
app.disable('etag');

app.get('/sse', (req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  const name = req.query.topic;
  if (typeof name === 'string') {
    res.write(`id: 0\nevent: session\ndata: ${name}\n\n`);
    const session = sseSession(res);
    const unsubscribe = subscribe(name, {
      send: (text) => session.deliver(text),
      end: () => res.end(),
    });
    res.on('close', unsubscribe);
    return;
  }
  const id = newSessionId();
  const session = sseSession(res);
  sessions.set(id, session);
  res.write(`id: 0\nevent: session\ndata: ${id}\n\n`);
  res.on('close', () => {
    session.closed = true;
    sessions.delete(id);
  });
});

app.get('/poll', (req, res) => {
  const { session: id, topic: name } = req.query;
  if (typeof id === 'string') {
    const session = sessions.get(id);
    if (!session || session.kind !== 'poll') return res.status(404).json({ error: `unknown session ${id}` });
    if (session.waiter) session.waiter.status(204).end(); // one poll at a time
    session.waiter = res;
    res.pollTimer = setTimeout(() => {
      if (session.waiter === res) {
        session.waiter = null;
        res.status(204).end();
      }
    }, POLL_WAIT_MS);
    res.on('close', () => {
      if (session.waiter === res) session.waiter = null;
      clearTimeout(res.pollTimer);
    });
    session.flush();
    return;
  }
  const newId = newSessionId();
  const session = pollSession();
  sessions.set(newId, session);
  if (typeof name === 'string') {
    subscribe(name, {
      // Broadcast messages ready together go in one response.
      send: (text) => session.deliverBatch([text]),
      end: () => {
        session.closed = true;
        session.flush();
        // Forget the session once its last messages had time to be polled.
        setTimeout(() => sessions.delete(newId), 60_000).unref();
      },
    });
  }
  res.json({ session: newId });
});

app.delete('/poll', (req, res) => {
  const id = req.query.session;
  const session = sessions.get(id);
  if (!session || session.kind !== 'poll') return res.status(404).json({ error: `unknown session ${id}` });
  session.closed = true;
  session.flush();
  sessions.delete(id);
  res.status(204).end();
});

// Upstream bodies come without a content type: parse every body as JSON (2 MiB limit, 413 above).
const jsonBody = express.json({ type: () => true, limit: '2mb' });

app.post('/rpc', jsonBody, (req, res) => {
  const id = req.query.session;
  if (typeof id !== 'string') return res.status(400).json({ error: 'missing session parameter' });
  const session = sessions.get(id);
  if (!session) return res.status(404).json({ error: `unknown session ${id}` });
  if (session.closed) return res.status(410).json({ error: `session ${id} closed` });
  const msg = parseClientMessage(req.body);
  res.status(202).end();
  handleUpstream(session, msg);
});

app.post('/broadcast', jsonBody, (req, res) => {
  const p = req.body || {};
  if (typeof p.topic !== 'string' || p.topic === '') throw new BadMessage('broadcast: bad topic');
  for (const [field, max] of [['subscribers', Number.MAX_SAFE_INTEGER], ['n', MAX_BROADCAST], ['interval_us', Number.MAX_SAFE_INTEGER], ['payload', MAX_SIZE]]) {
    if (!isCount(p[field], max)) throw new BadMessage(`broadcast: bad ${field}`);
  }
  const waitMs = isCount(p.wait_ms, Number.MAX_SAFE_INTEGER) ? p.wait_ms : 60_000;
  if (p.stall_ms !== undefined && !isCount(p.stall_ms, 10_000)) throw new BadMessage('broadcast: stall_ms over 10000');
  const t = topic(p.topic);
  if (t.plan) return res.status(200).json({ topic: p.topic, started: t.started });
  if (p.n === 0 && p.subscribers === 0) {
    t.plan = p;
    endTopic(p.topic);
    return res.status(202).end();
  }
  t.plan = p;
  res.status(202).end();
  if (t.subscribers.size >= p.subscribers) startBroadcast(p.topic);
  else t.waiting = setTimeout(() => startBroadcast(p.topic), waitMs);
});

app.post('/stall', (req, res) => {
  const ms = Number(req.query.ms);
  if (!Number.isInteger(ms) || ms < 0 || ms > 10_000) throw new BadMessage('stall: ms must be 0..10000');
  busyWait(ms);
  res.status(204).end();
});

// Unknown paths (GET /feed/sse and /feed/ws included: the reconnect scenario is not implemented).
app.use((req, res) => {
  res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
});

// Error handler: bad input is the client's fault (400, 413 from the body parser); anything else 500.
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  const status = err.status || err.statusCode || 500;
  if (status >= 500) console.error(`${req.method} ${req.originalUrl}:`, err);
  if (res.headersSent) return res.end();
  res.status(status).json({ error: err.message });
});

const server = http.createServer(app);
// pushbench's fairness rule: TCP_NODELAY on every socket (Nagle would dominate small messages).
server.on('connection', (socket) => socket.setNoDelay(true));

// ---------------------------------------------------------------------------------------------
// WebSockets: `ws` on the same http server

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

// Upgrades to /ws go to `ws`; any other path (GET /feed/ws: not implemented) is a 404.
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  if (new URL(req.url, 'http://localhost').pathname !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws, req) => {
  ws.on('error', (err) => console.error('ws error:', err.message));
  const name = new URL(req.url, 'http://localhost').searchParams.get('topic');
  if (name !== null) {
    ws.send(JSON.stringify({ op: 'subscribed', topic: name }));
    const unsubscribe = subscribe(name, {
      send: (text) => ws.send(text),
      end: () => ws.close(1000),
    });
    ws.on('close', unsubscribe);
    return;
  }
  const socket = req.socket;
  ws.on('message', (data, isBinary) => {
    let msg;
    try {
      msg = parseClientMessage(data.toString('utf8'));
    } catch (e) {
      ws.close(1007, e.message.slice(0, 120));
      return;
    }
    if (msg.kind === 'call') {
      const text = reply(msg.seq, msg.blockSize);
      ws.send(isBinary ? Buffer.from(text) : text);
      return;
    }
    streamPush(msg, {
      closed: () => ws.readyState !== ws.OPEN,
      send: (m) => ws.send(m),
      // One flush for the batch: cork the socket so the frames leave in one write.
      batch: (ms) => {
        socket.cork();
        for (const m of ms) ws.send(m);
        process.nextTick(() => socket.uncork());
      },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Raw-TCP floor: 4-byte big-endian length, then the message, both ways

const MAX_FRAME = 64 * 1024 * 1024;

const tcpServer = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const frame = (m) => {
    const body = Buffer.isBuffer(m) ? m : Buffer.from(m);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(body.length, 0);
    return Buffer.concat([head, body]);
  };
  let buffered = Buffer.alloc(0);
  let subscribed = false;
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const length = buffered.readUInt32BE(0);
      if (length > MAX_FRAME) return socket.destroy();
      if (buffered.length < 4 + length) return;
      const body = buffered.subarray(4, 4 + length).toString('utf8');
      buffered = buffered.subarray(4 + length);
      if (subscribed) continue; // a subscriber only receives
      let msg;
      try {
        msg = JSON.parse(body);
      } catch {
        return socket.destroy();
      }
      if (msg && msg.op === 'subscribe' && typeof msg.topic === 'string') {
        subscribed = true;
        socket.write(frame(JSON.stringify({ op: 'subscribed', topic: msg.topic })));
        const unsubscribe = subscribe(msg.topic, {
          send: (text) => socket.write(frame(text)),
          end: () => socket.end(),
        });
        socket.on('close', unsubscribe);
        continue;
      }
      try {
        msg = parseClientMessage(msg);
      } catch {
        return socket.destroy();
      }
      if (msg.kind === 'call') {
        socket.write(frame(reply(msg.seq, msg.blockSize)));
        continue;
      }
      streamPush(msg, {
        closed: () => socket.destroyed,
        send: (m) => socket.write(frame(m)),
        batch: (ms) => socket.write(Buffer.concat(ms.map(frame))),
      });
    }
  });
});

server.listen(PORT, HOST, () => {
  console.log(`http ${HOST}:${server.address().port}`);
  tcpServer.listen(TCP_PORT, HOST, () => {
    console.log(`tcp ${HOST}:${tcpServer.address().port}`);
  });
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    tcpServer.close();
    process.exit(0);
  });
}
