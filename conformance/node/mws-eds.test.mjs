// A gateway whose identity provider is an EDS backend: a signed-in EDS user passes its token as the Mws
// secret (it goes out as `Authorization: Bearer`, qtc-mws.js:44-50), gets a socket tagged with its user
// and groups, and receives the backend's changes it may read.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  TEST_TIMEOUT_MS,
  closeSockets,
  eds,
  env,
  fails,
  login,
  newBackend,
  newGateway,
  ok,
  openWithSdk,
  qtc,
  uniq,
} from './lib/harness.mjs';

const opts = { timeout: TEST_TIMEOUT_MS };
const PASSWORD = 'correct horse battery';
let backend;
let gateway;
let client;

before(async () => {
  backend = await newBackend('mws-eds');
  gateway = await newGateway({ identityProvider: { type: 'enginio', backendId: backend.backendId } });
  client = eds(backend);
});

after(() => closeSockets());

async function user(name) {
  const username = uniq(name);
  const created = await ok((cb) => client.users.insert({ username, password: PASSWORD }, cb), 'users.insert()');
  const { e, res } = await login(client, username, PASSWORD);
  assert.ok(!e, `sign-in: ${e} ${JSON.stringify(res)}`);
  return { id: created.id, token: res.access_token };
}

test('an EDS user token gets a socket tagged with the user and its groups; no token gets 401', opts, async () => {
  const alice = await user('alice');
  const mws = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id, secret: alice.token });
  const res = await ok((cb) => mws.getSocketAddress(cb), 'getSocketAddress() with a user token');
  assert.ok(res.tags.includes(`users.${alice.id}`), `tags: ${JSON.stringify(res.tags)}`);

  // With a group, the socket carries its tag too.
  const admin = eds(backend, { secret: backend.secret });
  const group = await ok((cb) => admin.usergroups.insert({ name: uniq('crew') }, cb), 'usergroups.insert()');
  await ok(
    (cb) =>
      admin.rest('POST', `/usergroups/${group.id}/members`, { body: JSON.stringify({ id: alice.id, objectType: 'users' }) }, cb),
    'add alice to the group',
  );
  const again = await ok((cb) => mws.getSocketAddress(cb), 'getSocketAddress() as a group member');
  assert.ok(again.tags.includes(`usergroups.${group.id}`), `tags: ${JSON.stringify(again.tags)}`);

  const anonymous = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id });
  await fails((cb) => anonymous.getSocketAddress(cb), 401, 'getSocketAddress() without a token');
  const stranger = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id, secret: 'a'.repeat(64) });
  await fails((cb) => stranger.getSocketAddress(cb), [401, 403], 'getSocketAddress() with a bad token');
});

test('changes made through the SDK reach the sockets of users who may read them', opts, async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const mws = new qtc.Mws({ address: env.mwsAddress, gatewayId: gateway.id, secret: alice.token });
  const { inbox } = await openWithSdk(mws);
  const notes = client.collection(uniq('notes'));

  // Readable by everyone: alice hears of it.
  const open = await ok((cb) => notes.insert({ text: 'public' }, { accessToken: bob.token }, cb), 'insert()');
  const frame = JSON.parse(await inbox.next());
  assert.equal(frame.object.id, open.id);
  assert.equal(frame.object.text, 'public');
  assert.equal(frame.meta.eventName, 'create');
  assert.equal(frame.meta.backendId, backend.backendId);

  // Readable by bob only: nothing for alice. Then an update of the public one arrives.
  await ok(
    (cb) =>
      notes.insert(
        { text: 'private', accessControlList: { read: [{ id: bob.id, objectType: 'users' }] } },
        { accessToken: bob.token },
        cb,
      ),
    'insert() of a private object',
  );
  await ok((cb) => notes.update(open.id, { text: 'public, edited' }, { accessToken: bob.token }, cb), 'update()');
  const update = JSON.parse(await inbox.next());
  assert.equal(update.meta.eventName, 'update', `the private create was not delivered: ${JSON.stringify(update)}`);
  assert.equal(update.object.text, 'public, edited');

  await ok((cb) => notes.remove(open.id, { accessToken: bob.token }, cb), 'remove()');
  const removal = JSON.parse(await inbox.next());
  assert.equal(removal.meta.eventName, 'delete');
  assert.equal(removal.object.id, open.id);
});
