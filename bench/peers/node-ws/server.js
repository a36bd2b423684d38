'use strict';

// MWS-compatible gateway on the `ws` package: the peer that Updraft is
// measured beside. Written the way a Node developer would: one http server,
// `ws` in noServer mode, a Map of sockets and a tag index.
//
//   GET  /v1/websocket_uri  -> 200 {uri, expiresAt, tags: []}
//   POST /v1/sockets        -> 201 {id, uri, expiresAt, tags}
//   POST /v1/messages       -> 201 {data, receivers}
//   upgrade on any path with ?token=<id>; unknown token -> close 1008
//
// With REDIS_URL set, several processes make one gateway the way the original
// MWS scaled: a message is published on Redis (channel `websocket_messages`,
// `{data, receivers}`), and every process delivers it to its own sockets.

const http = require('node:http');
const crypto = require('node:crypto');
const { WebSocketServer, WebSocket } = require('ws');

const PORT = Number(process.env.PORT || 8090);
const HOST = process.env.HOST || '127.0.0.1';
const TOKEN_TTL_MS = 5 * 60 * 1000;
const PING_INTERVAL_MS = Number(process.env.PING_INTERVAL_MS || 30000);
const MAX_BODY = 1024 * 1024;
const REDIS_URL = process.env.REDIS_URL;
const CHANNEL = 'websocket_messages';

/** token -> { tags, expiresAt } for URIs not yet used. */
const pending = new Map();
/** socket id -> ws */
const sockets = new Map();
/** tag -> Set<ws> */
const tagIndex = new Map();

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

function issueToken(tags, host) {
  const id = crypto.randomBytes(32).toString('hex');
  const expiresAt = new Date(Date.now() + TOKEN_TTL_MS);
  pending.set(id, { tags, expiresAt: expiresAt.getTime() });
  return { id, uri: `ws://${host}/?token=${id}`, expiresAt: expiresAt.toISOString(), tags };
}

function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function readJson(req, res, handler) {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      sendJson(res, 413, { error: 'body too large' });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      sendJson(res, 400, { error: 'invalid JSON' });
      return;
    }
    handler(body);
  });
}

function validTags(tags) {
  return tags === undefined || (Array.isArray(tags) && tags.every((t) => typeof t === 'string'));
}

function deliver(data, receivers) {
  const ids = Array.isArray(receivers.sockets) ? receivers.sockets : [];
  const tags = Array.isArray(receivers.tags) ? receivers.tags : [];

  if (ids.includes('*')) {
    for (const ws of sockets.values()) {
      if (ws.readyState === WebSocket.OPEN) ws.send(data);
    }
    return;
  }
  // Each socket at most once, however many selectors match it.
  const targets = new Set();
  for (const id of ids) {
    const ws = sockets.get(id);
    if (ws) targets.add(ws);
  }
  for (const tag of tags) {
    const members = tagIndex.get(tag);
    if (members) for (const ws of members) targets.add(ws);
  }
  for (const ws of targets) {
    if (ws.readyState === WebSocket.OPEN) ws.send(data);
  }
}

/** The Redis client that publishes, when REDIS_URL is set. */
let publisher = null;

function handleMessage(body, res) {
  const { data, receivers } = body;
  if (typeof data !== 'string' || typeof receivers !== 'object' || receivers === null) {
    sendJson(res, 400, { error: 'expected {data: string, receivers: {sockets, tags}}' });
    return;
  }
  if (!publisher) {
    deliver(data, receivers);
    sendJson(res, 201, { data, receivers });
    return;
  }
  // Every process, this one included, delivers it when its subscriber hears it.
  publisher
    .publish(CHANNEL, JSON.stringify({ data, receivers }))
    .then(() => sendJson(res, 201, { data, receivers }))
    .catch(() => sendJson(res, 503, { error: 'redis unavailable' }));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const host = req.headers.host || `${HOST}:${PORT}`;

  if (req.method === 'GET' && url.pathname === '/v1/websocket_uri') {
    const { uri, expiresAt, tags } = issueToken([], host);
    sendJson(res, 200, { uri, expiresAt, tags });
  } else if (req.method === 'POST' && url.pathname === '/v1/sockets') {
    // Any bearer token is accepted: the peer measures delivery, not auth.
    readJson(req, res, (body) => {
      if (!validTags(body.tags)) {
        sendJson(res, 400, { error: 'tags must be an array of strings' });
        return;
      }
      sendJson(res, 201, issueToken(body.tags || [], host));
    });
  } else if (req.method === 'POST' && url.pathname === '/v1/messages') {
    readJson(req, res, (body) => handleMessage(body, res));
  } else {
    sendJson(res, 404, { error: 'not found' });
  }
});

server.on('upgrade', (req, socket, head) => {
  const token = new URL(req.url, 'http://localhost').searchParams.get('token');
  const grant = token && pending.get(token);
  if (grant) pending.delete(token);
  const valid = grant && grant.expiresAt > Date.now();

  wss.handleUpgrade(req, socket, head, (ws) => {
    if (!valid) {
      ws.close(1008, 'invalid or expired token');
      return;
    }
    register(ws, token, grant.tags);
  });
});

function register(ws, id, tags) {
  ws.id = id;
  ws.tags = tags;
  ws.isAlive = true;
  sockets.set(id, ws);
  for (const tag of tags) {
    let members = tagIndex.get(tag);
    if (!members) {
      members = new Set();
      tagIndex.set(tag, members);
    }
    members.add(ws);
  }

  ws.on('pong', () => {
    ws.isAlive = true;
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    sockets.delete(id);
    for (const tag of tags) {
      const members = tagIndex.get(tag);
      if (members) {
        members.delete(ws);
        if (members.size === 0) tagIndex.delete(tag);
      }
    }
  });
}

// Heartbeat: drop peers that did not answer the previous ping.
const heartbeat = setInterval(() => {
  for (const ws of sockets.values()) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
  const now = Date.now();
  for (const [token, grant] of pending) {
    if (grant.expiresAt <= now) pending.delete(token);
  }
}, PING_INTERVAL_MS);

async function start() {
  if (REDIS_URL) {
    const { createClient } = require('redis');
    publisher = createClient({ url: REDIS_URL });
    const subscriber = publisher.duplicate();
    await Promise.all([publisher.connect(), subscriber.connect()]);
    await subscriber.subscribe(CHANNEL, (message) => {
      try {
        const { data, receivers } = JSON.parse(message);
        if (typeof data === 'string' && receivers) deliver(data, receivers);
      } catch {
        // Not a message of ours.
      }
    });
  }
  server.listen(PORT, HOST, () => {
    console.log(`node-ws MWS peer listening on http://${HOST}:${PORT}${REDIS_URL ? ` on ${REDIS_URL}` : ''}`);
  });
}

start().catch((err) => {
  console.error(err);
  process.exit(1);
});

function shutdown() {
  clearInterval(heartbeat);
  for (const ws of sockets.values()) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
