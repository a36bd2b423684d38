// Shared helpers for the Node interop suite: starts a real `updraft` process
// (port 0, fresh data dir) and wraps `ws` clients with a message queue.
// HTTP calls use the global fetch.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SECURITY_TOKEN = 'supersecret';
export const PING_INTERVAL_SECS = 1;
export const HTTP_TIMEOUT_MS = 5000;
export const WS_TIMEOUT_MS = 5000;
export const TEST_TIMEOUT_MS = 20000;

export function updraftBin() {
  const value = process.env.UPDRAFT_BIN || 'target/debug/updraft';
  if (path.isAbsolute(value)) return value;
  const candidates = [path.resolve(process.cwd(), value), path.resolve(REPO_ROOT, value)];
  return candidates.find((c) => existsSync(c)) ?? candidates[candidates.length - 1];
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A `ws` client that queues text messages and records pings and the close. */
export class Client {
  constructor(uri) {
    this.uri = uri;
    this.messages = [];
    this.waiters = [];
    this.pings = 0;
    this.errors = [];
    this.closeInfo = null;
    this.ws = new WebSocket(uri, { handshakeTimeout: WS_TIMEOUT_MS });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('close', (code) => reject(new Error(`closed (${code}) before open`)));
    });
    this.opened.catch(() => {}); // observed through open()
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
        this._flush();
      });
    });
    this.ws.on('error', (err) => this.errors.push(err));
    this.ws.on('ping', () => {
      this.pings += 1; // ws has already answered it with a pong (autoPong)
    });
    this.ws.on('message', (data, isBinary) => {
      this.messages.push({ text: Buffer.from(data).toString('utf8'), isBinary });
      this._flush();
    });
    liveClients.add(this);
    this.closed.then(() => liveClients.delete(this));
  }

  open() {
    return withTimeout(this.opened, WS_TIMEOUT_MS + 1000, `open ${this.uri}`).then(() => this);
  }

  _flush() {
    while (this.waiters.length > 0 && (this.messages.length > 0 || this.closeInfo)) {
      const waiter = this.waiters.shift();
      if (this.messages.length > 0) waiter.resolve(this.messages.shift());
      else waiter.reject(new Error(`connection closed (${this.closeInfo.code}) while waiting for a message`));
    }
  }

  /** The next message's text; fails on a binary frame, a close or a timeout. */
  async next(ms = WS_TIMEOUT_MS) {
    const msg = await withTimeout(
      new Promise((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        this._flush();
      }),
      ms,
      'next message',
    );
    if (msg.isBinary) throw new Error('expected a text frame, got a binary one');
    return msg.text;
  }

  /** Waits for the close; resolves { code, reason }. */
  waitClosed(ms = WS_TIMEOUT_MS) {
    return withTimeout(this.closed, ms, 'close');
  }

  /** Closes with a code and waits for the closing handshake to finish. */
  close(code = 1000, reason = '') {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.waitClosed();
  }

  destroy() {
    this.ws.terminate();
  }
}

const liveClients = new Set();

/** Drops every client still open (after a failed test) so the process can exit. */
export function destroyAllClients() {
  for (const c of liveClients) c.destroy();
  liveClients.clear();
}

export async function closeAll(...clients) {
  await Promise.allSettled(clients.map((c) => c.close()));
}

export class Server {
  static async start() {
    const server = new Server();
    await server._start();
    return server;
  }

  async _start() {
    const bin = updraftBin();
    if (!existsSync(bin)) {
      throw new Error(`updraft binary not found at ${bin}; build it with \`cargo build -p updraft-server\` or set UPDRAFT_BIN`);
    }
    this.dataDir = mkdtempSync(path.join(tmpdir(), 'updraft-interop-node-'));
    this.logs = [];
    this.proc = spawn(
      bin,
      [
        'serve',
        '--listen', '127.0.0.1:0',
        '--data-dir', this.dataDir,
        '--log-format', 'json',
        '--ping-interval-secs', String(PING_INTERVAL_SECS),
      ],
      {
        env: { ...process.env, ACCESS_CONTROL: 'none', SECURITY_TOKEN },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const listening = new Promise((resolve, reject) => {
      // Keep reading stderr for the process's whole life so it never blocks.
      createInterface({ input: this.proc.stderr }).on('line', (line) => {
        this.logs.push(line);
        if (this.addr) return;
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          return;
        }
        const fields = record.fields ?? {};
        if (fields.message === 'updraft listening' && fields.local_addr) {
          this.addr = fields.local_addr;
          resolve();
        }
      });
      this.proc.once('error', reject);
      this.exited.then(({ code }) => reject(new Error(`updraft exited (${code}) before listening`)));
    });
    try {
      await withTimeout(listening, 10000, "'updraft listening' log line");
    } catch (err) {
      await this.stop();
      throw new Error(`${err.message}\n${this.logTail()}`);
    }
    this.base = `http://${this.addr}`;
  }

  logTail(n = 20) {
    return this.logs.slice(-n).join('\n');
  }

  get running() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM (graceful shutdown) without waiting. */
  terminate() {
    if (this.running) this.proc.kill('SIGTERM');
  }

  async stop() {
    destroyAllClients();
    if (this.running) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, 5000, 'server exit');
      } catch {
        this.proc.kill('SIGKILL');
        await withTimeout(this.exited, 5000, 'server exit after SIGKILL');
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  // ---- HTTP ------------------------------------------------------------

  async http(method, urlPath, body, { admin = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (admin) headers.Authorization = `Bearer ${SECURITY_TOKEN}`;
    const res = await fetch(this.base + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async websocketUri() {
    const { status, body } = await this.http('GET', '/v1/websocket_uri');
    if (status !== 200) throw new Error(`GET /v1/websocket_uri: ${status} ${JSON.stringify(body)}`);
    if (!body.uri.startsWith(`ws://${this.addr}/?token=`)) throw new Error(`unexpected uri ${body.uri}`);
    return body.uri;
  }

  async createSocket(tags) {
    const { status, body } = await this.http('POST', '/v1/sockets', { tags }, { admin: true });
    if (status !== 201) throw new Error(`POST /v1/sockets: ${status} ${JSON.stringify(body)}`);
    return body;
  }

  async socketIds() {
    const { status, body } = await this.http('GET', '/v1/sockets', undefined, { admin: true });
    if (status !== 200) throw new Error(`GET /v1/sockets: ${status} ${JSON.stringify(body)}`);
    return new Set(body.results.map((s) => s.id));
  }

  async publish(data, { sockets = [], tags = [] } = {}) {
    const { status, body } = await this.http('POST', '/v1/messages', { data, receivers: { sockets, tags } });
    if (status !== 201) throw new Error(`POST /v1/messages: ${status} ${JSON.stringify(body)}`);
    if (body.data !== data) throw new Error('POST /v1/messages did not echo the data');
  }

  async deleteSocket(id) {
    return (await this.http('DELETE', `/v1/sockets/${id}`, undefined, { admin: true })).status;
  }

  /** Registration after the handshake is asynchronous: poll the list. */
  async waitRegistered(id, ms = 5000) {
    const deadline = Date.now() + ms;
    while (!(await this.socketIds()).has(id)) {
      if (Date.now() > deadline) throw new Error(`socket ${id} never listed by GET /v1/sockets`);
      await sleep(20);
    }
  }

  /** Id of the one socket that appeared since `before` was taken. */
  async waitNewSocket(before, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const fresh = [...(await this.socketIds())].filter((id) => !before.has(id));
      if (fresh.length > 1) throw new Error(`more than one new socket: ${fresh}`);
      if (fresh.length === 1) return fresh[0];
      if (Date.now() > deadline) throw new Error('connected socket never listed by GET /v1/sockets');
      await sleep(20);
    }
  }

  /**
   * Connects a socket and waits until the server has registered it. With
   * `tags` it is created by POST /v1/sockets (admin), otherwise through
   * GET /v1/websocket_uri and its id found by listing.
   */
  async openSocket(tags) {
    if (tags !== undefined) {
      const created = await this.createSocket(tags);
      const client = await new Client(created.uri).open();
      await this.waitRegistered(created.id);
      return { client, id: created.id };
    }
    const before = await this.socketIds();
    const client = await new Client(await this.websocketUri()).open();
    return { client, id: await this.waitNewSocket(before) };
  }
}
