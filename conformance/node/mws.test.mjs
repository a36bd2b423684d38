// Managed WebSocket through the SDK: `new qtc.Mws({address, gatewayId, secret})` (the hosted service's
// layout /v1/gateways/<gid>/...) and `new qtc.Mws({address})` (the single-gateway layout /v1/...).
// The SDK honours the scheme and port of the address (node_modules/qtc/lib/mws/qtc-mws.js:28-31, 143-153)
// and opens sockets with `ws` at the URI the server hands out (qtc-mws.js:55-81).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  HEX64,
  TEST_TIMEOUT_MS,
  closeSockets,
  env,
  fails,
  newGateway,
  newSocketId,
  ok,
  openUri,
  openWithSdk,
  qtc,
  socketIds,
  uniq,
  waitListed,
} from './lib/harness.mjs';

const opts = { timeout: TEST_TIMEOUT_MS };
let gateway;
let server; // application server side: has the gateway's security token
let client; // end-user side: no secret

before(async () => {
  gateway = await newGateway();
  server = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id, secret: gateway.securityToken });
  client = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id });
});

after(() => closeSockets());

const host = new URL(env.mwsAddress).hostname;

test('getSocketAddress answers a single-use wss:// URI on the host the client used', opts, async () => {
  const res = await ok((cb) => client.getSocketAddress(cb), 'Mws.getSocketAddress()');
  assert.deepEqual(Object.keys(res).sort(), ['expiresAt', 'tags', 'uri']);
  const uri = new URL(res.uri);
  assert.equal(uri.protocol, 'wss:');
  assert.equal(uri.hostname, host);
  assert.equal(uri.port, '', 'port 443 is implied');
  assert.match(uri.searchParams.get('token'), HEX64);
  assert.deepEqual(res.tags, []);
  const expires = Date.parse(res.expiresAt) - Date.now();
  assert.ok(expires > 60_000 && expires <= 300_000 + 5_000, `expiresAt about five minutes ahead: ${res.expiresAt}`);

  // Single use: a second connection with the same token is closed at once.
  const first = await openUri(res.uri);
  const second = await openUri(res.uri).catch((err) => ({ refused: err }));
  if (!second.refused) {
    const code = await Promise.race([second.closed, new Promise((r) => setTimeout(() => r('still open'), 2000))]);
    assert.notEqual(code, 'still open', 'a used token gives no second socket');
  }
  first.socket.terminate();
});

test("open() connects and the 'message' event brings a message sent to everyone", opts, async () => {
  const { inbox } = await openWithSdk(client);
  // The SDK's own example sends with only `sockets`: `tags` goes out as null (qtc-mws.js:103-112).
  const res = await ok((cb) => server.send('Hello World!', { sockets: ['*'] }, cb), "Mws.send('*')");
  assert.deepEqual(res, { data: 'Hello World!', receivers: { sockets: ['*'], tags: null } });
  assert.equal(await inbox.next(), 'Hello World!');
});

test('send reaches sockets by id and leaves the others alone', opts, async () => {
  const a = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id });
  const b = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id });
  let before = await socketIds(server);
  const sa = await openWithSdk(a);
  const idA = await newSocketId(server, before);
  before = await socketIds(server);
  const sb = await openWithSdk(b);
  const idB = await newSocketId(server, before);
  assert.match(idA, HEX64);

  await ok((cb) => server.send('for a', { sockets: [idA] }, cb), 'send() to socket a');
  assert.equal(await sa.inbox.next(), 'for a');
  await sb.inbox.quiet();

  await ok((cb) => server.send('for both', { sockets: [idA, idB], tags: [] }, cb), 'send() to both ids');
  assert.equal(await sa.inbox.next(), 'for both');
  assert.equal(await sb.inbox.next(), 'for both');
});

test('createSocket reserves a tagged socket; send by tag reaches it', opts, async () => {
  const room = uniq('room-');
  const reserved = await ok((cb) => server.createSocket([room, 'players'], cb), 'Mws.createSocket(tags)');
  assert.deepEqual(Object.keys(reserved).sort(), ['expiresAt', 'id', 'tags', 'uri']);
  assert.match(reserved.id, HEX64);
  assert.deepEqual(reserved.tags, [room, 'players']);
  assert.equal(new URL(reserved.uri).protocol, 'wss:');
  assert.equal(new URL(reserved.uri).hostname, host);

  // A single tag may be given as a string (qtc-mws.js:224-226), or none at all.
  const other = await ok((cb) => server.createSocket(uniq('lobby-'), cb), 'Mws.createSocket(tag string)');
  assert.equal(other.tags.length, 1);
  const bare = await ok((cb) => server.createSocket(cb), 'Mws.createSocket() without tags');
  assert.deepEqual(bare.tags, []);
  assert.match(bare.id, HEX64);

  const tagged = await openUri(reserved.uri);
  const untagged = await openUri(other.uri);
  await waitListed(server, reserved.id);
  await waitListed(server, other.id);

  const res = await ok((cb) => server.send('to the room', { tags: [room] }, cb), 'send() by tag');
  assert.deepEqual(res.receivers, { sockets: null, tags: [room] });
  assert.equal(await tagged.inbox.next(), 'to the room');
  await untagged.inbox.quiet();
});

test('getSockets lists connected sockets and getSocketInfo shows one', opts, async () => {
  const tag = uniq('listed-');
  const reserved = await ok((cb) => server.createSocket([tag], cb), 'createSocket()');
  await openUri(reserved.uri);
  await waitListed(server, reserved.id);

  const list = await ok((cb) => server.getSockets(cb), 'Mws.getSockets()');
  const entry = list.results.find((s) => s.id === reserved.id);
  assert.ok(entry, 'the connected socket is listed');
  assert.deepEqual(entry.tags, [tag]);
  assert.ok(!Number.isNaN(Date.parse(entry.connectedAt)), `connectedAt: ${JSON.stringify(entry)}`);

  const info = await ok((cb) => server.getSocketInfo(reserved.id, cb), 'Mws.getSocketInfo()');
  assert.equal(info.id, reserved.id);
  assert.deepEqual(info.tags, [tag]);
  assert.ok(!Number.isNaN(Date.parse(info.connectedAt)), `connectedAt: ${JSON.stringify(info)}`);

  await fails((cb) => server.getSocketInfo('0'.repeat(64), cb), 404, 'getSocketInfo(unknown id)');
});

test("rest('DELETE', '/sockets/:id') drops the socket and the client sees 'close'", opts, async () => {
  const mws = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id });
  const before = await socketIds(server);
  const { closed } = await openWithSdk(mws);
  const id = await newSocketId(server, before);
  await ok((cb) => server.rest('DELETE', `/sockets/${id}`, cb), 'rest DELETE /sockets/:id');
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error("no 'close' event")), 5000))]);
  assert.ok(!(await socketIds(server)).has(id));
});

test('an object sent as data arrives as its JSON text, a number as its digits', opts, async () => {
  const reserved = await ok((cb) => server.createSocket([uniq('json-')], cb), 'createSocket()');
  const sock = await openUri(reserved.uri);
  await waitListed(server, reserved.id);
  await ok((cb) => server.send({ kind: 'score', value: 3 }, { sockets: [reserved.id] }, cb), 'send(object)');
  assert.deepEqual(JSON.parse(await sock.inbox.next()), { kind: 'score', value: 3 });
  // Numbers are stringified, as the original service did (spec §3.4).
  await ok((cb) => server.send(42, { sockets: [reserved.id] }, cb), 'send(number)');
  assert.equal(await sock.inbox.next(), '42');
});

test('the server-side admin calls refuse a wrong secret with 401', opts, async () => {
  const intruder = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id, secret: 'f'.repeat(64) });
  await fails((cb) => intruder.getSockets(cb), 401, 'getSockets() with a wrong secret');
  await fails((cb) => intruder.createSocket(['x'], cb), 401, 'createSocket() with a wrong secret');
  await fails((cb) => intruder.getConfiguration(cb), 401, 'getConfiguration() with a wrong secret');
});

test('getConfiguration and setConfiguration read and change the gateway', opts, async () => {
  const own = await newGateway({ name: 'before' });
  const admin = new qtc.Mws({ address: env.mwsAddress, gatewayId: own.id, secret: own.securityToken });
  const anyone = new qtc.Mws({ address: env.mwsAddress, gatewayId: own.id });

  const config = await ok((cb) => admin.getConfiguration(cb), 'Mws.getConfiguration()');
  assert.equal(config.name, 'before');
  assert.ok('identityProvider' in config, `identityProvider: ${JSON.stringify(config)}`);
  assert.deepEqual(config.permissions, { read: ['*'], write: ['*'] });
  await ok((cb) => anyone.getSocketAddress(cb), 'an open gateway hands out sockets to anyone');

  const changed = await ok(
    (cb) =>
      admin.setConfiguration(
        { name: 'after', identityProvider: 'custom', permissions: { read: ['*'], write: ['*'] } },
        cb,
      ),
    'Mws.setConfiguration()',
  );
  assert.equal(changed.name, 'after');
  const again = await ok((cb) => admin.getConfiguration(cb), 'getConfiguration() after the change');
  assert.equal(again.name, 'after');

  // Custom access control: only the application server (the secret) gets sockets now.
  await fails((cb) => anyone.getSocketAddress(cb), 401, 'getSocketAddress() without the secret');
  const errored = new Promise((resolve) => anyone.once('error', (e, res) => resolve({ e, res })));
  anyone.open();
  const { e } = await errored;
  assert.equal(e, 401, "open() reports the refusal through the 'error' event");
  await ok((cb) => admin.createSocket(['private'], cb), 'createSocket() with the secret');
  await fails((cb) => anyone.send('x', { sockets: ['*'] }, cb), 401, 'send() without the secret');
});

test('a plain http:// address with a port gives ws:// sockets on that port', opts, async () => {
  const plain = new qtc.Mws({ address: env.mwsPlainAddress, gatewayId: gateway.id });
  const plainServer = new qtc.Mws({ address: env.mwsPlainAddress, gatewayId: gateway.id, secret: gateway.securityToken });
  const res = await ok((cb) => plain.getSocketAddress(cb), 'getSocketAddress() over http');
  const wanted = new URL(env.mwsPlainAddress);
  const uri = new URL(res.uri);
  assert.equal(uri.protocol, 'ws:');
  assert.equal(uri.host, wanted.host);

  const before = await socketIds(plainServer);
  const { inbox } = await openWithSdk(plain);
  const id = await newSocketId(plainServer, before);
  await ok((cb) => plainServer.send('over plain http', { sockets: [id] }, cb), 'send() over http');
  assert.equal(await inbox.next(), 'over plain http');
});

test('the single-gateway layout (no gatewayId) serves the same calls under /v1/', opts, async () => {
  const anyone = new qtc.Mws({ address: env.mwsAddress });
  const admin = new qtc.Mws({ address: env.mwsAddress, secret: env.securityToken });
  const res = await ok((cb) => anyone.getSocketAddress(cb), 'getSocketAddress() on /v1/');
  assert.equal(new URL(res.uri).protocol, 'wss:');

  const before = await socketIds(admin);
  const { inbox } = await openWithSdk(anyone);
  const id = await newSocketId(admin, before);
  await ok((cb) => anyone.send('hi default', { sockets: [id] }, cb), 'send() without a secret (ACCESS_CONTROL=none)');
  assert.equal(await inbox.next(), 'hi default');

  const reserved = await ok((cb) => admin.createSocket(['default-tag'], cb), 'createSocket() on /v1/');
  const tagged = await openUri(reserved.uri);
  await waitListed(admin, reserved.id);
  await ok((cb) => admin.send('tagged', { tags: ['default-tag'] }, cb), 'send() by tag on /v1/');
  assert.equal(await tagged.inbox.next(), 'tagged');
  await inbox.quiet();
  const info = await ok((cb) => admin.getSocketInfo(reserved.id, cb), 'getSocketInfo() on /v1/');
  assert.deepEqual(info.tags, ['default-tag']);

  // The same gateway is also reachable as gatewayId "default".
  const named = new qtc.Mws({ address: env.mwsAddress, gatewayId: 'default', secret: env.securityToken });
  assert.ok((await socketIds(named)).has(reserved.id), 'gatewayId "default" lists the same sockets');
  const config = await ok((cb) => named.getConfiguration(cb), 'getConfiguration() of gatewayId "default"');
  assert.deepEqual(config.identityProvider, { type: 'none' }, `ACCESS_CONTROL=none: ${JSON.stringify(config)}`);
});
