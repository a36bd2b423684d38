// Message delivery to `ws` clients: broadcast, tags, ids, payloads, pings.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { closeAll, PING_INTERVAL_SECS, Server, TEST_TIMEOUT_MS } from './lib/harness.mjs';

const SENTINEL = '--sentinel--';
const opts = { timeout: TEST_TIMEOUT_MS };

describe('delivery (ws client)', () => {
  let server;
  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server?.stop();
  });

  // Each client's next messages are exactly `expected`, then the sentinel,
  // broadcast after the messages under test: a duplicate or an unwanted
  // message shows up before it.
  async function expectOnly(pairs) {
    await server.publish(SENTINEL, { sockets: ['*'] });
    for (const [client, expected] of pairs) {
      const got = [];
      for (let i = 0; i <= expected.length; i++) got.push(await client.next());
      assert.deepEqual(got, [...expected, SENTINEL]);
    }
  }

  it('broadcast reaches every socket', opts, async () => {
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push((await server.openSocket()).client);
    try {
      await server.publish('hello everyone', { sockets: ['*'] });
      await expectOnly(clients.map((c) => [c, ['hello everyone']]));
    } finally {
      await closeAll(...clients);
    }
  });

  it('broadcast order is preserved', opts, async () => {
    const { client } = await server.openSocket();
    try {
      const sent = Array.from({ length: 20 }, (_, i) => `msg-${i}`);
      for (const data of sent) await server.publish(data, { sockets: ['*'] });
      const got = [];
      for (let i = 0; i < sent.length; i++) got.push(await client.next());
      assert.deepEqual(got, sent);
    } finally {
      await closeAll(client);
    }
  });

  it('tag routing delivers one copy', opts, async () => {
    const both = (await server.openSocket(['red', 'blue'])).client;
    const blue = (await server.openSocket(['blue'])).client;
    const green = (await server.openSocket(['green'])).client;
    const untagged = (await server.openSocket()).client;
    try {
      // `both` matches twice (red and blue) and must still get one copy.
      await server.publish('to red+blue', { tags: ['red', 'blue'] });
      await expectOnly([
        [both, ['to red+blue']],
        [blue, ['to red+blue']],
        [green, []],
        [untagged, []],
      ]);
    } finally {
      await closeAll(both, blue, green, untagged);
    }
  });

  it('message by socket id', opts, async () => {
    const a = await server.openSocket(['alpha']);
    const b = await server.openSocket(['beta']);
    const c = await server.openSocket(); // via GET /v1/websocket_uri
    try {
      await server.publish('by id', { sockets: [a.id, c.id] });
      await expectOnly([
        [a.client, ['by id']],
        [b.client, []],
        [c.client, ['by id']],
      ]);
      // Matching by id and by tag at once still yields one copy.
      await server.publish('id and tag', { sockets: [a.id], tags: ['alpha'] });
      await expectOnly([
        [a.client, ['id and tag']],
        [b.client, []],
        [c.client, []],
      ]);
    } finally {
      await closeAll(a.client, b.client, c.client);
    }
  });

  it('UTF-8 and large messages arrive intact', opts, async () => {
    const { client, id } = await server.openSocket();
    try {
      const small = 'Grüße, 世界! 🚀 ĀĒĪŌŪ — "quotes" \\ back\\slash\nnew line\ttab \u2028 e\u0301';
      await server.publish(small, { sockets: [id] });
      assert.equal(await client.next(), small);

      const unit = 'héllo wörld 日本語 🚀 ✓ '; // 1-, 2-, 3- and 4-byte UTF-8 sequences
      const large = unit.repeat(Math.floor((100 * 1024) / Buffer.byteLength(unit)) + 1);
      assert.ok(Buffer.byteLength(large) >= 100 * 1024);
      await server.publish(large, { sockets: ['*'] });
      const got = await client.next(10000);
      assert.equal(got.length, large.length);
      assert.ok(got === large, 'large message differs');
    } finally {
      await closeAll(client);
    }
  });

  it('server pings are answered and the connection survives', opts, async () => {
    const { client, id } = await server.openSocket();
    try {
      await sleep(3 * PING_INTERVAL_SECS * 1000 + 500);
      // ws answers each ping with a pong itself (autoPong) before emitting 'ping'.
      assert.ok(client.pings >= 2, `only ${client.pings} pings seen`);
      assert.equal(client.closeInfo, null, 'connection was closed');
      await server.publish('still here', { sockets: [id] });
      assert.equal(await client.next(), 'still here');
    } finally {
      await closeAll(client);
    }
  });
});
