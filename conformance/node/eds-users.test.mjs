// EDS users and usergroups through the SDK (`eds.users`, `eds.usergroups`: the same collection methods on
// /v1/users/ and /v1/usergroups/), signing in with `eds.rest()` (the SDK has no login method), acting as a
// user with the per-call `accessToken` option or `new Eds({secret: <token>})`, and the instance secret.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import {
  HEX24,
  ISO_MS,
  TEST_TIMEOUT_MS,
  assertEdsError,
  call,
  eds,
  fails,
  login,
  newBackend,
  ok,
  uniq,
} from './lib/harness.mjs';

const opts = { timeout: TEST_TIMEOUT_MS };
let backend;
let client; // anonymous
let admin; // with the instance secret

before(async () => {
  backend = await newBackend('users');
  client = eds(backend);
  admin = eds(backend, { secret: backend.secret });
});

const PASSWORD = 'correct horse battery';

async function signUp(username, extra = {}) {
  return ok(
    (cb) => client.users.insert({ username, password: PASSWORD, ...extra }, cb),
    `users.insert(${username})`,
  );
}

async function token(username) {
  const { e, res } = await login(client, username, PASSWORD);
  assert.ok(!e, `sign-in of ${username}: HTTP ${e} ${JSON.stringify(res)}`);
  return res;
}

test('users.insert signs a user up and never answers the password', opts, async () => {
  const username = uniq('john');
  const user = await signUp(username, { email: `${username}@example.com`, firstName: 'John', lastName: 'Doe', age: 40 });
  assert.match(user.id, HEX24);
  assert.equal(user.objectType, 'users');
  assert.equal(user.username, username);
  assert.equal(user.firstName, 'John');
  assert.equal(user.email, `${username}@example.com`);
  assert.equal(user.age, 40, 'custom properties are kept');
  assert.match(user.createdAt, ISO_MS);
  assert.equal(user.password, undefined);

  const found = await ok((cb) => client.users.find({ username }, cb), 'users.find({username})');
  assert.deepEqual(found.map((u) => u.id), [user.id]);
  assert.equal(found[0].password, undefined);
  assert.equal(await ok((cb) => client.users.count({ username }, cb), 'users.count()'), 1);
  const one = await ok((cb) => client.users.findOne(user.id, cb), 'users.findOne()');
  assert.equal(one.username, username);
});

test('users.insert refuses a taken username and a missing password with ValidationFailed', opts, async () => {
  const username = uniq('dup');
  await signUp(username);
  const taken = await fails(
    (cb) => client.users.insert({ username, password: PASSWORD }, cb),
    400,
    'users.insert() of a taken username',
  );
  assertEdsError(taken, { property: 'username', reason: 'ValidationFailed' });
  const blank = await fails(
    (cb) => client.users.insert({ username: uniq('nopw') }, cb),
    400,
    'users.insert() without a password',
  );
  assertEdsError(blank, { property: 'password', reason: 'ValidationFailed' });
});

test('eds.rest() signs a user in with the OAuth2 password grant (form body, no Content-Type)', opts, async () => {
  const username = uniq('login');
  const user = await signUp(username);
  const res = await token(username);
  assert.ok(res.access_token, `access_token: ${JSON.stringify(res)}`);
  assert.equal(String(res.token_type).toLowerCase(), 'bearer');
  assert.equal(typeof res.expires_in, 'number');
  assert.equal(res.enginio_data?.user?.id, user.id);
  assert.equal(res.enginio_data.user.username, username);
  assert.ok(Array.isArray(res.enginio_data.usergroups), `enginio_data.usergroups: ${JSON.stringify(res)}`);

  const { e } = await login(client, username, 'wrong password');
  assert.ok(typeof e === 'number' && e >= 400 && e < 500, `a wrong password is refused with a 4xx, got ${e}`);

  // The token acts for the user: GET /v1/user through an Eds whose secret is the token.
  const asUser = eds(backend, { secret: res.access_token });
  const me = await ok((cb) => asUser.rest('GET', '/user', cb), 'rest GET /user as the user');
  assert.equal(me.id, user.id);
  assert.equal(me.username, username);
  assert.ok(Array.isArray(me.usergroups), `usergroups in /v1/user: ${JSON.stringify(me)}`);
});

test('the accessToken option writes as the user: creator, updater and private objects', opts, async () => {
  const alice = uniq('alice');
  const aliceUser = await signUp(alice);
  const aliceToken = (await token(alice)).access_token;
  const bob = uniq('bob');
  await signUp(bob);
  const bobToken = (await token(bob)).access_token;
  const diary = client.collection(uniq('diary'));

  const entry = await ok(
    (cb) =>
      diary.insert(
        {
          text: 'dear diary',
          accessControlList: {
            read: [{ id: aliceUser.id, objectType: 'users' }],
            update: [{ id: aliceUser.id, objectType: 'users' }],
            delete: [{ id: aliceUser.id, objectType: 'users' }],
            admin: [{ id: aliceUser.id, objectType: 'users' }],
          },
        },
        { accessToken: aliceToken },
        cb,
      ),
    'insert() with accessToken',
  );
  assert.deepEqual(entry.creator, { id: aliceUser.id, objectType: 'users' });

  const withCreator = await ok(
    (cb) => diary.find({}, { accessToken: aliceToken, include: { creator: {} } }, cb),
    'find() with include creator',
  );
  assert.deepEqual(withCreator.map((o) => o.id), [entry.id]);
  assert.equal(withCreator[0].creator.username, alice, `include expands the creator: ${JSON.stringify(withCreator[0])}`);
  const one = await ok(
    (cb) => diary.findOne(entry.id, { accessToken: aliceToken, include: { creator: {} } }, cb),
    'findOne() with include creator',
  );
  assert.equal(one.creator.username, alice, `include expands the creator: ${JSON.stringify(one)}`);

  // Only alice (and the instance secret) may read it.
  assert.deepEqual(await ok((cb) => diary.find({}, cb), 'anonymous find()'), []);
  assert.deepEqual(await ok((cb) => diary.find({}, { accessToken: bobToken }, cb), "bob's find()"), []);
  assert.equal(await ok((cb) => diary.count({}, { accessToken: aliceToken }, cb), "alice's count()"), 1);
  assert.equal(await ok((cb) => diary.count({}, { accessToken: bobToken }, cb), "bob's count()"), 0);
  const anonymous = await call((cb) => diary.findOne(entry.id, cb), 'anonymous findOne()');
  assert.ok([401, 403, 404].includes(anonymous.e), `anonymous findOne() is refused, got ${anonymous.e}`);
  await fails((cb) => diary.update(entry.id, { text: 'hacked' }, { accessToken: bobToken }, cb), [403, 404], "bob's update()");

  const updated = await ok(
    (cb) => diary.update(entry.id, { text: 'dear diary, again' }, { accessToken: aliceToken }, cb),
    "alice's update()",
  );
  assert.deepEqual(updated.updater, { id: aliceUser.id, objectType: 'users' });
  assert.equal(updated.text, 'dear diary, again');
  const removed = await call((cb) => diary.remove(entry.id, { accessToken: aliceToken }, cb), "alice's remove()");
  assert.deepEqual(removed, { e: null, res: true });
});

test('the instance secret reads, changes and removes what only a user may', opts, async () => {
  const carol = uniq('carol');
  const carolUser = await signUp(carol);
  const carolToken = (await token(carol)).access_token;
  const vault = client.collection(uniq('vault'));
  const secretThing = await ok(
    (cb) =>
      vault.insert(
        {
          code: 1234,
          accessControlList: {
            read: [{ id: carolUser.id, objectType: 'users' }],
            admin: [{ id: carolUser.id, objectType: 'users' }],
          },
        },
        { accessToken: carolToken },
        cb,
      ),
    'insert() of a private object',
  );
  assert.deepEqual(await ok((cb) => vault.find({}, cb), 'anonymous find()'), []);

  const adminVault = admin.collection(vault.name);
  const seen = await ok((cb) => adminVault.find({}, cb), 'find() with the instance secret');
  assert.deepEqual(seen.map((o) => o.id), [secretThing.id]);
  const read = await ok((cb) => adminVault.findOne(secretThing.id, cb), 'findOne() with the instance secret');
  assert.equal(read.code, 1234);
  const changed = await ok((cb) => adminVault.update(secretThing.id, { code: 4321 }, cb), 'update() with the secret');
  assert.equal(changed.code, 4321);
  // The secret also serves the users collection, e.g. a server-side user lookup.
  const users = await ok((cb) => admin.users.find({ username: carol }, cb), 'users.find() with the secret');
  assert.deepEqual(users.map((u) => u.id), [carolUser.id]);
  assert.deepEqual(await call((cb) => adminVault.remove(secretThing.id, cb)), { e: null, res: true });

  // A wrong secret is no anonymous caller: it is refused.
  const wrong = eds(backend, { secret: 'not-the-secret' });
  const { e } = await call((cb) => wrong.collection(vault.name).find({}, cb), 'find() with a wrong secret');
  assert.equal(e, 401, `a wrong bearer token answers 401, got ${e}`);
});

test('users.update and users.remove as the user itself', opts, async () => {
  const dave = uniq('dave');
  const user = await signUp(dave, { firstName: 'Dave' });
  const daveToken = (await token(dave)).access_token;
  const updated = await ok(
    (cb) => client.users.update(user.id, { lastName: 'Smith' }, { accessToken: daveToken }, cb),
    'users.update() by the user',
  );
  assert.equal(updated.id, user.id);
  assert.equal(updated.username, dave);
  assert.equal(updated.firstName, 'Dave');
  assert.equal(updated.lastName, 'Smith');
  assert.equal(updated.password, undefined);

  // A new password through update, then sign-in with it.
  await ok(
    (cb) => client.users.update(user.id, { password: 'a new long password' }, { accessToken: daveToken }, cb),
    'users.update() of the password',
  );
  const { e } = await login(client, dave, 'a new long password');
  assert.equal(e, null, 'sign-in with the new password');

  const removed = await call((cb) => client.users.remove(user.id, { accessToken: daveToken }, cb), 'users.remove()');
  assert.deepEqual(removed, { e: null, res: true });
  await fails((cb) => client.users.findOne(user.id, cb), 404, 'users.findOne() after remove');
});

test('usergroups: insert, find, findOne, update, count, remove', opts, async () => {
  // Server-side code with the instance secret; a group is administered by its creator (spec §2.3), and
  // with anonymous access nobody would be.
  const name = uniq('editors');
  const group = await ok((cb) => admin.usergroups.insert({ name }, cb), 'usergroups.insert()');
  assert.match(group.id, HEX24);
  assert.equal(group.objectType, 'usergroups');
  assert.equal(group.name, name);

  const found = await ok((cb) => client.usergroups.find({ name }, cb), 'usergroups.find() (anyone may read)');
  assert.deepEqual(found.map((g) => g.id), [group.id]);
  assert.equal(await ok((cb) => client.usergroups.count({ name }, cb), 'usergroups.count()'), 1);
  const updated = await ok(
    (cb) => admin.usergroups.update(group.id, { description: 'they edit' }, cb),
    'usergroups.update()',
  );
  assert.equal(updated.name, name);
  assert.equal(updated.description, 'they edit');
  const one = await ok((cb) => client.usergroups.findOne(group.id, cb), 'usergroups.findOne()');
  assert.equal(one.description, 'they edit');
  assert.deepEqual(await call((cb) => admin.usergroups.remove(group.id, cb)), { e: null, res: true });
  await fails((cb) => client.usergroups.findOne(group.id, cb), 404, 'usergroups.findOne() after remove');
});

test('usergroups created by a signed-in user of a locked backend are administered by that user', opts, async () => {
  // A development backend is `open` (anyone changes any group, as on the hosted service); production is `locked`.
  const locked = await newBackend('locked-users', { environment: 'production' });
  const client = eds(locked);
  const gina = uniq('gina');
  await ok((cb) => client.users.insert({ username: gina, password: PASSWORD }, cb), 'users.insert() (sign-up)');
  const ginaToken = (await login(client, gina, PASSWORD)).res.access_token;
  const group = await ok(
    (cb) => client.usergroups.insert({ name: uniq('team') }, { accessToken: ginaToken }, cb),
    'usergroups.insert() as a user',
  );
  const updated = await ok(
    (cb) => client.usergroups.update(group.id, { description: 'mine' }, { accessToken: ginaToken }, cb),
    'usergroups.update() by its creator',
  );
  assert.equal(updated.description, 'mine');
  await fails(
    (cb) => client.usergroups.update(group.id, { description: 'yours' }, cb),
    [401, 403, 404],
    'usergroups.update() anonymously (the group is not even visible)',
  );
  const removed = await call(
    (cb) => client.usergroups.remove(group.id, { accessToken: ginaToken }, cb),
    'usergroups.remove() by its creator',
  );
  assert.deepEqual(removed, { e: null, res: true });
});

test('usergroup membership through eds.rest(): add, list, and what members may read', opts, async () => {
  const erin = uniq('erin');
  const erinUser = await signUp(erin);
  const frank = uniq('frank');
  await signUp(frank);
  const group = await ok((cb) => client.usergroups.insert({ name: uniq('club') }, cb), 'usergroups.insert()');

  const member = await ok(
    (cb) =>
      client.rest(
        'POST',
        `/usergroups/${group.id}/members`,
        { body: JSON.stringify({ id: erinUser.id, objectType: 'users' }) },
        cb,
      ),
    'rest POST /usergroups/:id/members',
  );
  assert.equal(member.id, erinUser.id, `the answer is the user: ${JSON.stringify(member)}`);

  const members = await ok((cb) => client.rest('GET', `/usergroups/${group.id}/members`, cb), 'rest GET members');
  assert.deepEqual(members.results.map((u) => u.id), [erinUser.id]);

  // Her token now carries the group; so does GET /v1/user.
  const erinLogin = await token(erin);
  const groupIds = erinLogin.enginio_data.usergroups.map((g) => (typeof g === 'string' ? g : g.id));
  assert.ok(groupIds.includes(group.id), `enginio_data.usergroups: ${JSON.stringify(erinLogin.enginio_data)}`);
  const me = await ok((cb) => eds(backend, { secret: erinLogin.access_token }).rest('GET', '/user', cb), 'GET /user');
  assert.ok(
    me.usergroups.some((g) => (typeof g === 'string' ? g : g.id) === group.id),
    `usergroups of /v1/user: ${JSON.stringify(me.usergroups)}`,
  );

  // An object readable by the group: members see it, others do not.
  const board = client.collection(uniq('board'));
  const post = await ok(
    (cb) =>
      board.insert(
        { text: 'members only', accessControlList: { read: [{ id: group.id, objectType: 'usergroups' }] } },
        { accessToken: erinLogin.access_token },
        cb,
      ),
    'insert() readable by the group',
  );
  const frankToken = (await token(frank)).access_token;
  assert.deepEqual(
    (await ok((cb) => board.find({}, { accessToken: erinLogin.access_token }, cb), "a member's find()")).map((o) => o.id),
    [post.id],
  );
  assert.deepEqual(await ok((cb) => board.find({}, { accessToken: frankToken }, cb), "a non-member's find()"), []);
});
