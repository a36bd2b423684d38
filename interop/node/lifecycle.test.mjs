// Close handshakes seen by `ws` clients: echo, token reuse, admin delete.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Client, closeAll, Server, TEST_TIMEOUT_MS } from './lib/harness.mjs';

const opts = { timeout: TEST_TIMEOUT_MS };

describe('lifecycle (ws client)', () => {
  let server;
  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server?.stop();
  });

  it('client close code 4001 is echoed', opts, async () => {
    const { client } = await server.openSocket();
    const { code, reason } = await client.close(4001, 'client going');
    // ws reports the code of the close frame it received from the server.
    assert.equal(code, 4001);
    assert.equal(typeof reason, 'string');
  });

  it('reused token is closed with 1008', opts, async () => {
    const uri = await server.websocketUri();
    const before = await server.socketIds();
    const first = await new Client(uri).open();
    const firstId = await server.waitNewSocket(before);
    try {
      // Accepted at the HTTP level, then closed with policy violation.
      const second = await new Client(uri).open();
      assert.equal((await second.waitClosed()).code, 1008);

      // The legitimate holder of the token is unaffected.
      await server.publish('first still open', { sockets: [firstId] });
      assert.equal(await first.next(), 'first still open');
    } finally {
      await closeAll(first);
    }
    // Still refused once the first connection has gone.
    const third = await new Client(uri).open();
    assert.equal((await third.waitClosed()).code, 1008);
  });

  it('admin DELETE closes with 1000', opts, async () => {
    const { client, id } = await server.openSocket(['doomed']);
    const status = await server.deleteSocket(id);
    assert.ok(status >= 200 && status < 300, `DELETE status ${status}`);
    assert.equal((await client.waitClosed()).code, 1000);
  });
});
