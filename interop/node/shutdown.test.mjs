// SIGTERM on the server closes every `ws` client with 1001.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Server, TEST_TIMEOUT_MS } from './lib/harness.mjs';

describe('shutdown (ws client)', () => {
  let server;
  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server?.stop();
  });

  it('SIGTERM closes sockets with 1001', { timeout: TEST_TIMEOUT_MS }, async () => {
    const a = (await server.openSocket()).client;
    const b = (await server.openSocket(['t'])).client;
    server.terminate();
    for (const client of [a, b]) {
      assert.equal((await client.waitClosed(10000)).code, 1001);
    }
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, 10000, { code: 'no exit within 10 s' });
    });
    const { code } = await Promise.race([server.exited, timeout]).finally(() => clearTimeout(timer));
    assert.equal(code, 0, `server exit: ${code}\n${server.logTail()}`);
  });
});
