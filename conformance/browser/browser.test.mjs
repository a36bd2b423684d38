// A web page on another origin uses Updraft from headless Chromium, with nothing but fetch and WebSocket:
// EDS sign-up, sign-in, create and list (CORS preflights included), an MWS socket URI, the socket, an EDS
// change pushed on it, and an MWS message sent to it. The browser enforces CORS, so every step that passes
// shows the server's CORS answers are what a browser needs.
//
// Started by run.sh, which starts `updraft serve` and passes its address and secrets:
//   BROWSER_API_BASE        http://127.0.0.1:<port> of the server
//   BROWSER_SECURITY_TOKEN  the default gateway's SECURITY_TOKEN
//   BROWSER_ADMIN_EMAIL, BROWSER_ADMIN_PASSWORD  the account that manages EDS apps
//   BROWSER_CHROMIUM        the browser binary (default /usr/bin/chromium)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set (run this suite with conformance/browser/run.sh)`);
  return v;
};
const API = env('BROWSER_API_BASE').replace(/\/$/, '');
const SECURITY_TOKEN = env('BROWSER_SECURITY_TOKEN');
const ADMIN_EMAIL = env('BROWSER_ADMIN_EMAIL');
const ADMIN_PASSWORD = env('BROWSER_ADMIN_PASSWORD');
const CHROMIUM = env('BROWSER_CHROMIUM', '/usr/bin/chromium');

const opts = { timeout: 30_000 };
const FRAME_WAIT_MS = 10_000;
const PAGE_HTML = readFileSync(new URL('./page.html', import.meta.url));
const uniq = (prefix) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

let backendId;
let pageOrigin; // where the page comes from: http://127.0.0.1:<port2>
let otherOrigin; // a third origin that sends no CORS headers (the control)
let otherHits = 0;
const servers = [];
let browser;
let page;
const consoleLines = []; // the browser's console (CORS errors are reported there)
const preflights = new Map(); // CDP requestId -> {method, url, headers, status, responseHeaders}

// ---- helpers ------------------------------------------------------------------------------------------

// A Node-side request (not the browser): returns {status, headers, body}.
function raw(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${url}: no answer in 10 s`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function rawOk(method, path, want, options) {
  const res = await raw(method, API + path, options);
  assert.equal(res.status, want, `${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

// What the browser console said recently, for failure messages.
const recentConsole = () => (consoleLines.length ? `\nbrowser console:\n  ${consoleLines.slice(-10).join('\n  ')}` : '');

// One fetch from the page, cross-origin; `what` names the step in failure messages.
async function pageCall(what, method, path, options = {}) {
  const res = await page.evaluate(([m, u, o]) => window.call(m, u, o), [method, API + path, options]);
  assert.ok(!res.error, `${what}: ${method} ${path} from origin ${pageOrigin} failed in the browser: ${res.error}${recentConsole()}`);
  return res;
}

function expectJson(what, res, status) {
  assert.equal(res.status, status, `${what}: expected HTTP ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.match(res.contentType, /^application\/json/, `${what}: Content-Type ${res.contentType}`);
  assert.equal(typeof res.body, 'object', `${what}: body is not JSON: ${res.body}`);
  return res.body;
}

// Waits until the page's socket has received a frame (from index `from` on) that `match` accepts; `match`
// runs in the page and gets the frame's text and `arg`.
async function waitFrame(what, from, match, arg) {
  const source = match.toString();
  try {
    const handle = await page.waitForFunction(
      ([src, start, a]) => {
        const fn = (0, eval)(`(${src})`);
        return window.received.slice(start).find((t) => { try { return fn(t, a); } catch { return false; } });
      },
      [source, from, arg],
      { timeout: FRAME_WAIT_MS, polling: 20 },
    );
    return await handle.jsonValue();
  } catch (e) {
    const state = await page.evaluate((start) => ({ frames: window.received.slice(start), socket: window.socketState }), from);
    assert.fail(`${what}: not received within ${FRAME_WAIT_MS} ms (${e.message.split('\n')[0]}); socket ${state.socket}, ` +
      `frames since: ${JSON.stringify(state.frames)}${recentConsole()}`);
  }
}

// A header of a CDP header object, whatever its case.
const header = (headers, name) => Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];

// The preflights CDP saw for a URL, with their answers.
const preflightsFor = (url) => [...preflights.values()].filter((p) => p.url === url && p.type === 'Preflight');

// ---- setup ---------------------------------------------------------------------------------------------

function listen(handler) {
  return new Promise((resolve, reject) => {
    const server = http.createServer(handler);
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      servers.push(server);
      resolve(`http://127.0.0.1:${server.address().port}`);
    });
  });
}

before(async () => {
  // An app, its development backend, and the default gateway bound to it so its changes reach sockets.
  const form = new URLSearchParams({ grant_type: 'password', username: ADMIN_EMAIL, password: ADMIN_PASSWORD }).toString();
  const account = await rawOk('POST', '/v1/account/auth/oauth2/token', 200, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  assert.ok(account.access_token, `account token: ${JSON.stringify(account)}`);
  const app = await raw('POST', `${API}/v1/account/apps`, {
    headers: { Authorization: `Bearer ${account.access_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: uniq('browser') }),
  });
  assert.ok([200, 201].includes(app.status), `POST /v1/account/apps: HTTP ${app.status} ${JSON.stringify(app.body)}`);
  backendId = app.body.environments?.[0]?.id;
  assert.match(String(backendId), /^[0-9a-f]{24}$/, `backend id: ${JSON.stringify(app.body)}`);
  await rawOk('PUT', '/v1/gateways/default/configuration', 200, {
    // Binding a backend takes proof of owning it besides the gateway's token.
    headers: {
      Authorization: `Bearer ${SECURITY_TOKEN}`,
      'Enginio-Backend-MasterKey': app.body.environments[0].masterKeys[0].key,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ identityProvider: { type: 'none', backendId } }),
  });

  // The page's origin, and a control origin that answers without any CORS header.
  pageOrigin = await listen((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(PAGE_HTML);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  otherOrigin = await listen((req, res) => {
    otherHits += 1;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  });
  assert.notEqual(new URL(pageOrigin).origin, new URL(API).origin, 'the page must come from another origin than the API');

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext();
  page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));

  // CDP shows the CORS preflights that page events do not: an OPTIONS request (the page itself sends none)
  // whose response CDP types "Preflight".
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.requestWillBeSent', (e) => {
    if (e.request.method === 'OPTIONS') {
      preflights.set(e.requestId, { method: e.request.method, url: e.request.url, headers: e.request.headers });
    }
  });
  cdp.on('Network.responseReceived', (e) => {
    const p = preflights.get(e.requestId);
    if (p) Object.assign(p, { type: e.type, status: e.response.status, responseHeaders: e.response.headers });
  });
  await cdp.send('Network.enable');

  const nav = await page.goto(`${pageOrigin}/`);
  assert.equal(nav.status(), 200, 'the test page loads');
  assert.equal(await page.evaluate(() => typeof window.call), 'function', 'the page script ran');
});

after(async () => {
  await page?.evaluate(() => window.socket?.close()).catch(() => {});
  await browser?.close().catch(() => {});
  await Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(() => r()); })));
});

// ---- tests -----------------------------------------------------------------------------------------------

test('Node side: a CORS preflight echoes the Origin and allows the methods and headers a page sends', opts, async () => {
  const requested = ['enginio-backend-id', 'content-type', 'authorization'];
  for (const path of ['/v1/users', '/v1/auth/oauth2/token', '/v1/objects/todos', '/v1/websocket_uri', '/v1/messages']) {
    const res = await raw('OPTIONS', API + path, {
      headers: {
        Origin: pageOrigin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': requested.join(','),
      },
    });
    const h = res.headers;
    const shown = `OPTIONS ${path} (Origin ${pageOrigin}): HTTP ${res.status} headers ${JSON.stringify(h)}`;
    assert.ok(res.status >= 200 && res.status < 300, `${shown}: not 2xx`);
    assert.equal(h['access-control-allow-origin'], pageOrigin, `${shown}: Access-Control-Allow-Origin must echo the Origin`);
    const methods = String(h['access-control-allow-methods'] ?? '').split(',').map((s) => s.trim().toUpperCase());
    for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
      assert.ok(methods.includes(m) || methods.includes('*'), `${shown}: Access-Control-Allow-Methods lacks ${m}`);
    }
    const allowed = String(h['access-control-allow-headers'] ?? '').split(',').map((s) => s.trim().toLowerCase());
    for (const name of requested) {
      assert.ok(allowed.includes(name) || allowed.includes('*'), `${shown}: Access-Control-Allow-Headers lacks ${name}`);
    }
  }

  // An actual request with an Origin gets it echoed; one without gets no CORS header (spec §0.10).
  const withOrigin = await raw('GET', `${API}/v1/objects/todos`, { headers: { Origin: pageOrigin, 'Enginio-Backend-Id': backendId } });
  assert.equal(withOrigin.status, 200, `GET /v1/objects/todos: HTTP ${withOrigin.status} ${JSON.stringify(withOrigin.body)}`);
  assert.equal(withOrigin.headers['access-control-allow-origin'], pageOrigin,
    `GET /v1/objects/todos with Origin: headers ${JSON.stringify(withOrigin.headers)}`);
  const noOrigin = await raw('GET', `${API}/v1/objects/todos`, { headers: { 'Enginio-Backend-Id': backendId } });
  assert.equal(noOrigin.headers['access-control-allow-origin'], undefined,
    `GET /v1/objects/todos without Origin must carry no CORS header: ${JSON.stringify(noOrigin.headers)}`);
});

test('the page is on another origin, and the browser enforces CORS there', opts, async () => {
  assert.equal(await page.evaluate(() => location.origin), pageOrigin);
  assert.notEqual(pageOrigin, new URL(API).origin);
  // Control: a server that sends no CORS header gets the request, but the page may not read the answer.
  const hitsBefore = otherHits;
  const res = await page.evaluate((u) => window.call('GET', u), `${otherOrigin}/no-cors`);
  assert.match(String(res.error), /TypeError/, `a cross-origin fetch without CORS headers must fail: ${JSON.stringify(res)}`);
  assert.equal(otherHits, hitsBefore + 1, 'the control request reached its server');
  consoleLines.length = 0; // the control's CORS error is expected; later failures show only their own
});

let user; // {id, username, token}

test('EDS cross-origin from the page: sign up, sign in, create a todo, list todos', opts, async () => {
  const bid = { 'Enginio-Backend-Id': backendId };
  const username = uniq('page-user');
  const password = 'correct horse battery staple';

  const signup = expectJson('sign-up', await pageCall('sign-up', 'POST', '/v1/users', { headers: bid, json: { username, password } }), 201);
  assert.match(String(signup.id), /^[0-9a-f]{24}$/, `sign-up: ${JSON.stringify(signup)}`);
  assert.equal(signup.username, username);
  assert.equal(signup.password, undefined, 'sign-up never returns the password');

  const signin = expectJson('sign-in', await pageCall('sign-in', 'POST', '/v1/auth/oauth2/token', {
    headers: bid,
    form: { grant_type: 'password', username, password },
  }), 200);
  assert.equal(typeof signin.access_token, 'string', `sign-in: ${JSON.stringify(signin)}`);
  assert.equal(String(signin.token_type).toLowerCase(), 'bearer');
  assert.equal(signin.enginio_data?.user?.username, username, `sign-in: ${JSON.stringify(signin)}`);
  user = { id: signup.id, username, token: signin.access_token };

  const auth = { ...bid, Authorization: `Bearer ${user.token}` };
  const todo = expectJson('create', await pageCall('create', 'POST', '/v1/objects/todos', {
    headers: auth,
    json: { title: 'buy milk', completed: false },
  }), 201);
  assert.match(String(todo.id), /^[0-9a-f]{24}$/, `create: ${JSON.stringify(todo)}`);
  assert.equal(todo.objectType, 'objects.todos');
  assert.equal(todo.title, 'buy milk');
  assert.equal(todo.completed, false);
  assert.equal(todo.creator?.id, user.id, `create: creator ${JSON.stringify(todo.creator)}`);

  const list = expectJson('list', await pageCall('list', 'GET', '/v1/objects/todos', { headers: auth }), 200);
  assert.ok(Array.isArray(list.results), `list: ${JSON.stringify(list)}`);
  const found = list.results.find((o) => o.id === todo.id);
  assert.ok(found, `list: the new todo ${todo.id} is missing from ${JSON.stringify(list.results)}`);
  assert.equal(found.title, 'buy milk');

  // The JSON POSTs with Enginio-Backend-Id were preflighted, and each preflight was answered 2xx.
  for (const path of ['/v1/users', '/v1/objects/todos']) {
    const seen = preflightsFor(API + path);
    assert.ok(seen.length > 0, `no CORS preflight seen for ${path}: ${JSON.stringify([...preflights.values()])}`);
    for (const p of seen) {
      assert.ok(p.status >= 200 && p.status < 300, `preflight of ${path}: ${JSON.stringify(p)}`);
      assert.match(String(header(p.headers, 'access-control-request-headers')), /enginio-backend-id/i,
        `preflight of ${path} asks for Enginio-Backend-Id: ${JSON.stringify(p.headers)}`);
      assert.equal(header(p.responseHeaders, 'access-control-allow-origin'), pageOrigin,
        `preflight of ${path} answered: ${JSON.stringify(p.responseHeaders)}`);
    }
  }
});

test('MWS cross-origin from the page: a socket URI, the socket, an EDS change and a message pushed on it', opts, async () => {
  assert.ok(user, 'needs the user of the EDS test');

  const uri = expectJson('socket URI', await pageCall('socket URI', 'GET', '/v1/websocket_uri'), 200);
  assert.deepEqual(Object.keys(uri).sort(), ['expiresAt', 'tags', 'uri'], `socket URI: ${JSON.stringify(uri)}`);
  assert.match(uri.uri, /^ws:\/\/[^/]+\/\?token=[0-9a-f]{64}$/, `socket URI: ${uri.uri}`);

  const opened = await page.evaluate((u) => window.openSocket(u), uri.uri);
  assert.ok(opened.open, `new WebSocket(${uri.uri}) from ${pageOrigin}: ${JSON.stringify(opened)}${recentConsole()}`);

  // An EDS change made cross-origin arrives on the socket as {"object","meta":{"eventName":"create"}}.
  let from = await page.evaluate(() => window.received.length);
  const auth = { 'Enginio-Backend-Id': backendId, Authorization: `Bearer ${user.token}` };
  const todo = expectJson('create while the socket listens', await pageCall('create', 'POST', '/v1/objects/todos', {
    headers: auth,
    json: { title: 'pushed to the socket', completed: false },
  }), 201);
  const frame = await waitFrame('the socket message of the new todo', from,
    (text, id) => { const m = JSON.parse(text); return m.meta?.eventName === 'create' && m.object?.id === id; }, todo.id);
  const event = JSON.parse(frame);
  assert.equal(event.object.title, 'pushed to the socket', `frame: ${frame}`);
  assert.equal(event.object.objectType, 'objects.todos', `frame: ${frame}`);
  assert.equal(event.meta.eventName, 'create', `frame: ${frame}`);
  if (event.meta.backendId !== undefined) assert.equal(event.meta.backendId, backendId, `frame: ${frame}`);

  // A message sent cross-origin with the gateway's token arrives verbatim.
  from = await page.evaluate(() => window.received.length);
  const sent = expectJson('send', await pageCall('send', 'POST', '/v1/messages', {
    headers: { Authorization: `Bearer ${SECURITY_TOKEN}` },
    json: { data: 'hello', receivers: { sockets: ['*'], tags: [] } },
  }), 201);
  assert.equal(sent.data, 'hello', `send: ${JSON.stringify(sent)}`);
  assert.equal(await waitFrame('the message "hello"', from, (text) => text === 'hello'), 'hello');

  const seen = preflightsFor(`${API}/v1/messages`);
  assert.ok(seen.length > 0, 'POST /v1/messages with Authorization was preflighted');
  for (const p of seen) assert.ok(p.status >= 200 && p.status < 300, `preflight of /v1/messages: ${JSON.stringify(p)}`);
});
