// Shared helpers of the conformance suite. The suite drives a running `updraft` (started by
// conformance/run.sh) through the official Node SDK, npm `qtc` 0.6.10, used exactly as its README and
// examples show: callbacks `(e, res)`, where `e` is the HTTP status (a number) for answers >= 400, an
// Error for a failed connection, and null on success (node_modules/qtc/lib/common/qtc-http-request.js:66).
//
// The SDK sends EDS requests to https://<host>:443 whatever port the address names
// (lib/eds/qtc-eds-basecollection.js, `protocol: "https"`, no port), and MWS requests to the scheme and
// port of its address (lib/mws/qtc-mws.js:143-153). Setup that the SDK cannot do (account, apps, object
// types, gateways) goes to the server directly with fetch.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The SDK itself, as application code loads it. */
export const qtc = require('qtc');
/** The WebSocket client the SDK opens its sockets with (its own dependency, pinned beside it). */
export const WebSocket = require('ws');

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the suite with conformance/run.sh, which starts the server and sets it`);
  }
  return value;
}

export const env = {
  /** EDS address as an application configures it: host name only, https. */
  edsAddress: need('CONFORMANCE_EDS_ADDRESS'),
  /** MWS over HTTPS on 443 (sockets are wss://). */
  mwsAddress: need('CONFORMANCE_MWS_ADDRESS'),
  /** MWS over plain HTTP on a port of its own (sockets are ws://host:port). */
  mwsPlainAddress: need('CONFORMANCE_MWS_PLAIN_ADDRESS'),
  /** Plain base URL for setup calls the SDK has no method for. */
  adminBase: need('CONFORMANCE_ADMIN_BASE'),
  adminEmail: need('CONFORMANCE_ADMIN_EMAIL'),
  adminPassword: need('CONFORMANCE_ADMIN_PASSWORD'),
  /** UPDRAFT_ADMIN_TOKEN: creates gateways. */
  serverAdminToken: need('CONFORMANCE_SERVER_ADMIN_TOKEN'),
  /** SECURITY_TOKEN of the default gateway (ACCESS_CONTROL=none). */
  securityToken: need('CONFORMANCE_SECURITY_TOKEN'),
};

export const TEST_TIMEOUT_MS = 20000;
export const MESSAGE_TIMEOUT_MS = 5000;
/** How long "nothing arrives" is watched for. */
export const QUIET_MS = 300;

/** A fresh name, so that tests never see each other's data. */
export function uniq(prefix) {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls an SDK method that takes a callback `(e, res)` as its last argument and resolves `{ e, res }`.
 * `call((cb) => contacts.insert(obj, cb))`.
 */
export function call(invoke, what = 'SDK callback') {
  return withTimeout(
    new Promise((resolve, reject) => {
      try {
        invoke((e, res) => resolve({ e, res }));
      } catch (err) {
        reject(err);
      }
    }),
    10000,
    what,
  );
}

function describeFailure(what, e, res) {
  const status = e instanceof Error ? `${e.name}: ${e.message}` : `HTTP ${e}`;
  return `${what} failed: ${status}; body ${typeof res === 'string' ? res : JSON.stringify(res)}`;
}

/** Like `call`, but the SDK must report success; resolves `res`. */
export async function ok(invoke, what = 'SDK call') {
  const { e, res } = await call(invoke, what);
  assert.ok(!e, describeFailure(what, e, res));
  return res;
}

/** Like `call`, but the SDK must report the HTTP status `status` (or one of them); resolves `res`. */
export async function fails(invoke, status, what = 'SDK call') {
  const { e, res } = await call(invoke, what);
  const wanted = Array.isArray(status) ? status : [status];
  assert.ok(
    typeof e === 'number' && wanted.includes(e),
    `${what}: expected HTTP ${wanted.join(' or ')}, got ${e instanceof Error ? e.message : e === null ? 'success' : e}; body ${JSON.stringify(res)}`,
  );
  return res;
}

/** The EDS error body the clients read: `{"errors":[{"message","reason"}]}` (spec §0.5). */
export function assertEdsError(body, { property, reason } = {}) {
  assert.equal(typeof body, 'object', `the error body is parsed JSON (Content-Type: application/json): ${body}`);
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `errors array: ${JSON.stringify(body)}`);
  assert.ok(body.errors[0].message, `errors[0].message: ${JSON.stringify(body)}`);
  assert.ok(body.errors[0].reason, `errors[0].reason: ${JSON.stringify(body)}`);
  if (reason) assert.equal(body.errors[0].reason, reason);
  if (property) assert.equal(body.errors[0].property, property);
}

export const HEX24 = /^[0-9a-f]{24}$/;
export const HEX64 = /^[0-9a-f]{64}$/;
export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// ---- setup through the plain listener ----------------------------------------------------------------

/** A JSON request to the server, outside the SDK. */
export async function http(method, path, { body, form, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, signal: AbortSignal.timeout(10000) };
  if (form !== undefined) {
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(form).toString();
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(env.adminBase + path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

async function expectStatus(what, promise, ...statuses) {
  const res = await promise;
  assert.ok(statuses.includes(res.status), `${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

let accountToken;
export async function account() {
  if (!accountToken) {
    const body = await expectStatus(
      'account sign-in (POST /v1/account/auth/oauth2/token)',
      http('POST', '/v1/account/auth/oauth2/token', {
        form: { grant_type: 'password', username: env.adminEmail, password: env.adminPassword },
      }),
      200,
    );
    accountToken = body.access_token;
  }
  return accountToken;
}

/**
 * A new app with one of its backends (development, `open` by default, unless `environment` says production,
 * `locked`): `{ backendId, secret, masterKey, accountToken }`. Each test file takes its own, so files never share data.
 */
export async function newBackend(name, { environment = 'development' } = {}) {
  const token = await account();
  const app = await expectStatus(
    'POST /v1/account/apps',
    http('POST', '/v1/account/apps', { body: { name: uniq(name) }, headers: { Authorization: `Bearer ${token}` } }),
    200,
    201,
  );
  const dev = app.environments.find((e) => e.name === environment) ?? app.environments[0];
  return { backendId: dev.id, secret: dev.secret, masterKey: dev.masterKeys[0].key, accountToken: token };
}

/** Declares an object type (schema) the way the dashboard did: account bearer + master key. */
export async function defineObjectType(backend, schema) {
  return expectStatus(
    `POST /v1/object_types ${schema.name}`,
    http('POST', '/v1/object_types', {
      body: schema,
      headers: {
        Authorization: `Bearer ${backend.accountToken}`,
        'Enginio-Backend-Id': backend.backendId,
        'Enginio-Backend-MasterKey': backend.masterKey,
      },
    }),
    200,
    201,
  );
}

/** A gateway (an MWS instance of the hosted service): `{ id, securityToken, ... }`. */
export async function newGateway(config = {}) {
  return expectStatus(
    'POST /v1/gateways',
    http('POST', '/v1/gateways', {
      body: { name: uniq('conformance-'), ...config },
      headers: { Authorization: `Bearer ${env.serverAdminToken}` },
    }),
    200,
    201,
  );
}

// ---- EDS through the SDK ---------------------------------------------------------------------------------

/** An EDS client as application code makes it. */
export function eds(backend, { secret } = {}) {
  return new qtc.Eds({ address: env.edsAddress, backendId: backend.backendId, ...(secret ? { secret } : {}) });
}

/**
 * Signs a user in with the SDK's generic request (it has no login method): the form body goes out
 * without a Content-Type header, like every body the SDK sends.
 */
export function login(client, username, password) {
  const body = new URLSearchParams({ grant_type: 'password', username, password }).toString();
  return call((cb) => client.rest('POST', '/auth/oauth2/token', { body }, cb), 'POST /v1/auth/oauth2/token');
}

// ---- MWS sockets -------------------------------------------------------------------------------------------

/** Queues what a source of 'message' events emits, so tests can await the next message or its absence. */
class Inbox {
  constructor() {
    this.messages = [];
    this.waiters = [];
    this.closed = false;
  }

  push(data) {
    this.messages.push(Buffer.isBuffer(data) ? data.toString('utf8') : String(data));
    this._flush();
  }

  close() {
    this.closed = true;
    this._flush();
  }

  _flush() {
    while (this.waiters.length > 0 && (this.messages.length > 0 || this.closed)) {
      const waiter = this.waiters.shift();
      if (this.messages.length > 0) waiter.resolve(this.messages.shift());
      else waiter.reject(new Error('the socket closed while a message was awaited'));
    }
  }

  next(ms = MESSAGE_TIMEOUT_MS) {
    return withTimeout(
      new Promise((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        this._flush();
      }),
      ms,
      'next socket message',
    );
  }

  /** Fails if anything arrives within `ms`. */
  async quiet(ms = QUIET_MS) {
    await new Promise((r) => setTimeout(r, ms));
    assert.deepEqual(this.messages, [], 'no message was meant for this socket');
  }
}

const openSockets = new Set();

/**
 * `mws.open()` as the SDK's example client uses it: GET websocket_uri, then a `ws` socket; 'open',
 * 'message', 'close' and 'error' events on the Mws object. Resolves once open.
 */
export async function openWithSdk(mws) {
  const inbox = new Inbox();
  const closed = new Promise((resolve) => mws.once('close', resolve));
  const opened = new Promise((resolve, reject) => {
    mws.once('open', resolve);
    mws.once('error', (e, res) => reject(new Error(describeFailure('Mws.open() (GET websocket_uri)', e, res))));
  });
  mws.on('message', (data) => inbox.push(data));
  mws.on('close', () => inbox.close());
  mws.open();
  await withTimeout(opened, MESSAGE_TIMEOUT_MS, "Mws 'open' event");
  mws.socket.on('error', () => {}); // reported through 'close'
  openSockets.add(mws.socket);
  return { inbox, closed, socket: mws.socket };
}

/** A socket URI handed to another client (e.g. from `createSocket`), opened with `ws` as the SDK does. */
export async function openUri(uri) {
  const inbox = new Inbox();
  const socket = new WebSocket(uri);
  socket.on('message', (data) => inbox.push(data));
  const closed = new Promise((resolve) => socket.on('close', (code) => { inbox.close(); resolve(code); }));
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    }),
    MESSAGE_TIMEOUT_MS,
    `open ${uri}`,
  );
  socket.on('error', () => {});
  openSockets.add(socket);
  return { inbox, closed, socket };
}

/** Ends every socket a test opened so the test process can exit. */
export function closeSockets() {
  for (const socket of openSockets) socket.terminate();
  openSockets.clear();
}

/** Ids from `getSockets()`; the list answer is `{"results":[{id, connectedAt, tags}]}`. */
export async function socketIds(mws) {
  const res = await ok((cb) => mws.getSockets(cb), 'Mws.getSockets()');
  assert.ok(Array.isArray(res?.results), `getSockets() results: ${JSON.stringify(res)}`);
  return new Set(res.results.map((s) => s.id));
}

/** The id of the one socket that connected since `before` (registration follows the handshake). */
export async function newSocketId(mws, before, ms = MESSAGE_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const fresh = [...(await socketIds(mws))].filter((id) => !before.has(id));
    if (fresh.length === 1) return fresh[0];
    assert.ok(fresh.length < 2, `more than one new socket: ${fresh}`);
    assert.ok(Date.now() < deadline, 'the connected socket never appeared in getSockets()');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until `getSockets()` lists `id`. */
export async function waitListed(mws, id, ms = MESSAGE_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  while (!(await socketIds(mws)).has(id)) {
    assert.ok(Date.now() < deadline, `socket ${id} never appeared in getSockets()`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
