// The server of the Qt Cloud Services todo tutorial (qtcloudservices/qtc-tutorial-todo,
// server/api/routes.js) is real application code written against this SDK. This file makes the same SDK
// calls in the same order, without its Express layer: an Eds with the instance secret and an Mws with the
// gateway's security token, as its qtc-conf.js configures them; its own `users` and `sessions` collections
// (custom collections, /v1/objects/users/, holding a SHA-1 password hash), todos keyed by "user:<id>",
// and a socket per user tag for pushing changes.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';

import { TEST_TIMEOUT_MS, closeSockets, eds, env, newBackend, newGateway, ok, openUri, qtc, uniq, waitListed } from './lib/harness.mjs';

const sha1 = (text) => createHash('sha1').update(text).digest('hex');

let conf;
let todos;
let users;
let sessions;
let mws;

before(async () => {
  const backend = await newBackend('todo-tutorial');
  const gateway = await newGateway({ identityProvider: 'custom' });
  conf = {
    eds: { address: env.edsAddress, backendId: backend.backendId, secret: backend.secret },
    mws: { address: env.mwsAddress, gatewayId: gateway.id, secret: gateway.securityToken },
  };
  const client = new qtc.Eds(conf.eds);
  todos = client.collection('todos');
  users = client.collection('users');
  sessions = client.collection('sessions');
  mws = new qtc.Mws(conf.mws);
});

after(() => closeSockets());

async function register(name, username, password) {
  const existing = await ok((cb) => users.find({ username }, cb), 'register: users.find({username})');
  assert.equal(existing.length, 0);
  return ok((cb) => users.insert({ name, username, password: sha1(password) }, cb), 'register: users.insert()');
}

async function signIn(username, password) {
  const found = await ok(
    (cb) => users.find({ username, password: sha1(password) }, cb),
    'login: users.find({username, password})',
  );
  if (found.length === 0) return null;
  const session = sha1(`session ${Date.now()} ${Math.random()}`);
  return ok(
    (cb) => sessions.insert({ session, userId: found[0].id, name: found[0].name }, cb),
    'login: sessions.insert()',
  );
}

async function authenticate(session) {
  const found = await ok((cb) => sessions.find({ session }, cb), 'authenticate: sessions.find({session})');
  return found[0] ?? null;
}

test('register, log in, todos with sorting, a pushed change, log out', { timeout: TEST_TIMEOUT_MS }, async () => {
  const username = uniq('tutor');
  const user = await register('Tutor', username, 'secret words');
  assert.equal(user.username, username);
  assert.equal(user.password, sha1('secret words'), 'a property named password is an ordinary property here');
  await assert.rejects(register('Tutor', username, 'again'), 'the same username is found on the second try');

  assert.equal(await signIn(username, 'wrong'), null, 'a wrong password finds no user');
  const login = await signIn(username, 'secret words');
  assert.equal(login.userId, user.id);
  const session = await authenticate(login.session);
  assert.equal(session.userId, user.id);
  assert.equal(session.name, 'Tutor');

  // GET /api/websocket: a socket tagged with the user, handed to the browser.
  const tag = `user:${session.userId}`;
  const forBrowser = await ok((cb) => mws.createSocket([tag], cb), 'mws.createSocket(["user:<id>"])');
  const browser = await openUri(forBrowser.uri);
  const otherUser = await openUri((await ok((cb) => mws.createSocket([`user:${uniq('x')}`], cb))).uri);
  await waitListed(mws, forBrowser.id);

  // POST /api/todos, three times; one is then marked done.
  const created = [];
  for (const text of ['milk', 'bread', 'eggs']) {
    created.push(
      await ok(
        (cb) => todos.insert({ userId: tag, text, done: false, device: 'node' }, cb),
        `todos.insert(${text})`,
      ),
    );
    await new Promise((r) => setTimeout(r, 3)); // distinct updatedAt values
  }
  await ok((cb) => todos.find({ userId: `user:${uniq('x')}` }, cb), "another user's todos").then((list) =>
    assert.deepEqual(list, []),
  );

  // PUT /api/todos/:id checks ownership with find({id, userId}), then updates.
  const owned = await ok((cb) => todos.find({ id: created[0].id, userId: tag }, cb), 'todos.find({id, userId})');
  assert.equal(owned.length, 1);
  const done = await ok((cb) => todos.update(created[0].id, { done: true }, cb), 'todos.update({done})');
  assert.equal(done.done, true);
  assert.equal(done.text, 'milk');

  // The change goes to the user's sockets: send(JSON text, {sockets: null, tags: [userId]}).
  const payload = { object: done, meta: { eventName: 'update' } };
  const sent = await ok(
    (cb) => mws.send(JSON.stringify(payload), { sockets: null, tags: [payload.object.userId] }, cb),
    'mws.send(..., {sockets: null, tags})',
  );
  assert.deepEqual(sent.receivers, { sockets: null, tags: [tag] });
  assert.deepEqual(JSON.parse(await browser.inbox.next()), payload);
  await otherUser.inbox.quiet();

  // GET /api/todos: not done first, then the most recently updated.
  const list = await ok(
    (cb) =>
      todos.find(
        { userId: tag },
        { sort: [{ sortBy: 'done', direction: 'asc' }, { sortBy: 'updatedAt', direction: 'desc' }] },
        cb,
      ),
    'todos.find() sorted by done, updatedAt desc',
  );
  assert.deepEqual(
    list.map((t) => t.text),
    ['eggs', 'bread', 'milk'],
  );

  // DELETE /api/todos/:id, then GET /api/logout.
  assert.equal(await ok((cb) => todos.remove(created[1].id, cb), 'todos.remove()'), true);
  assert.equal(await ok((cb) => sessions.remove(session.id, cb), 'sessions.remove()'), true);
  assert.equal(await authenticate(login.session), null, 'the session is gone');
});
