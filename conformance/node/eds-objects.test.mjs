// EDS collections through the SDK: `eds.collection(name)` and its insert, find, findOne, update, remove and
// count, plus `eds.rest()`. Requests go to https://<host>:443/v1/objects/<name>/ (trailing slash), with
// bodies and no Content-Type (node_modules/qtc/lib/eds/qtc-eds-basecollection.js).

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import {
  HEX24,
  ISO_MS,
  TEST_TIMEOUT_MS,
  assertEdsError,
  call,
  defineObjectType,
  eds,
  fails,
  newBackend,
  ok,
  uniq,
} from './lib/harness.mjs';

const opts = { timeout: TEST_TIMEOUT_MS };
let backend;
let client; // anonymous, as a client app without a secret

before(async () => {
  backend = await newBackend('objects');
  client = eds(backend);
});

test('insert answers the stored object with id, objectType and timestamps', opts, async () => {
  // The README's quick start, verbatim apart from the address.
  const contacts = client.collection('contacts');
  const obj = {
    name: 'John',
    age: 31,
    likes: ['pizza', 'coke'],
    address: { city: 'Springfield', country: 'USA' },
  };
  const res = await ok((cb) => contacts.insert(obj, cb), 'contacts.insert()');
  assert.match(res.id, HEX24);
  assert.equal(res.objectType, 'objects.contacts');
  assert.match(res.createdAt, ISO_MS);
  assert.match(res.updatedAt, ISO_MS);
  assert.equal(res.name, 'John');
  assert.equal(res.age, 31);
  assert.deepEqual(res.likes, ['pizza', 'coke']);
  assert.deepEqual(res.address, { city: 'Springfield', country: 'USA' });
});

test('insert accepts the typed values of Eds.Ref, Eds.Time and Eds.Geoloc', opts, async () => {
  const lists = client.collection('lists');
  const list = await ok((cb) => lists.insert({ title: 'groceries' }, cb), 'lists.insert()');
  const items = client.collection('items');
  const res = await ok(
    (cb) =>
      items.insert(
        {
          list: client.Ref(list.id, 'objects.lists'),
          due: client.Time('2014-06-28T16:38:32.369Z'),
          where: client.Geoloc(60.17, 24.94),
        },
        cb,
      ),
    'items.insert() with Ref/Time/Geoloc',
  );
  // Stored refs come back as plain {id, objectType} (spec §1.1.11).
  assert.deepEqual(res.list, { id: list.id, objectType: 'objects.lists' });
  assert.equal(res.due, '2014-06-28T16:38:32.369Z');
  assert.ok(res.where !== undefined && res.where !== null, `geoloc stored: ${JSON.stringify(res)}`);
  const again = await ok((cb) => items.findOne(res.id, cb), 'items.findOne()');
  assert.deepEqual(again.list, { id: list.id, objectType: 'objects.lists' });
  // Refs are matched by value, or by a dotted path into them (spec §2.2).
  const byRef = await ok((cb) => items.find({ list: { id: list.id, objectType: 'objects.lists' } }, cb), 'find() by ref');
  assert.deepEqual(byRef.map((o) => o.id), [res.id]);
  const byPath = await ok((cb) => items.find({ 'list.id': list.id }, cb), 'find() by list.id');
  assert.deepEqual(byPath.map((o) => o.id), [res.id]);
});

test('text beyond ASCII is stored and read back unchanged', opts, async () => {
  // The SDK computes Content-Length in UTF-8 bytes (qtc-http-request.js:37-39).
  const places = client.collection('places');
  const name = 'Jyväskylä ✓ 東京 🚀';
  const res = await ok((cb) => places.insert({ name }, cb), 'insert() of non-ASCII text');
  assert.equal(res.name, name);
  const found = await ok((cb) => places.find({ name }, cb), 'find() by non-ASCII text');
  assert.deepEqual(found.map((o) => o.id), [res.id]);
  assert.equal(found[0].name, name);
});

test('find answers the results array for a query, sort, limit and offset', opts, async () => {
  const scores = client.collection(uniq('scores'));
  for (const n of [3, 1, 5, 2, 4]) {
    await ok((cb) => scores.insert({ n, even: n % 2 === 0, player: { name: `p${n}` } }, cb), 'scores.insert()');
  }
  const byN = (list) => list.map((o) => o.n);

  let res = await ok(
    (cb) => scores.find({ n: { $gte: 2 } }, { sort: [{ sortBy: 'n', direction: 'desc' }], limit: 2 }, cb),
    'find() with $gte, sort desc, limit',
  );
  assert.deepEqual(byN(res), [5, 4]);

  res = await ok(
    (cb) => scores.find({}, { sort: [{ sortBy: 'n', direction: 'asc' }], limit: 2, offset: 2 }, cb),
    'find() with offset',
  );
  assert.deepEqual(byN(res), [3, 4]);

  res = await ok((cb) => scores.find({ even: true }, { sort: [{ sortBy: 'n', direction: 'asc' }] }, cb), 'find() by equality');
  assert.deepEqual(byN(res), [2, 4]);

  res = await ok(
    (cb) => scores.find({ n: { $in: [1, 5, 9] } }, { sort: [{ sortBy: 'n', direction: 'asc' }] }, cb),
    'find() with $in',
  );
  assert.deepEqual(byN(res), [1, 5]);

  res = await ok(
    (cb) => scores.find({ $or: [{ n: 1 }, { 'player.name': 'p3' }] }, { sort: [{ sortBy: 'n', direction: 'asc' }] }, cb),
    'find() with $or and a dotted path',
  );
  assert.deepEqual(byN(res), [1, 3]);

  // Two sort keys, as the todo tutorial sorts (done asc, then updatedAt desc).
  res = await ok(
    (cb) =>
      scores.find({}, { sort: [{ sortBy: 'even', direction: 'asc' }, { sortBy: 'n', direction: 'desc' }] }, cb),
    'find() with two sort keys',
  );
  assert.deepEqual(byN(res), [5, 3, 1, 4, 2]);

  // Every result is a complete object.
  for (const o of res) {
    assert.match(o.id, HEX24);
    assert.equal(o.objectType, scores.objectType);
  }
});

test('find on a collection nobody wrote to answers an empty array', opts, async () => {
  const res = await ok((cb) => client.collection(uniq('empty')).find({}, cb), 'find() on an unused collection');
  assert.deepEqual(res, []);
});

test('find by id matches one object, and none once it is removed', opts, async () => {
  // The todo tutorial reads single items with find({id, ...}).
  const todos = client.collection('todos');
  const todo = await ok((cb) => todos.insert({ text: 'milk', userId: 'user:1', done: false }, cb), 'todos.insert()');
  let res = await ok((cb) => todos.find({ id: todo.id, userId: 'user:1' }, cb), 'find({id, userId})');
  assert.equal(res.length, 1);
  assert.equal(res[0].id, todo.id);
  res = await ok((cb) => todos.find({ id: todo.id, userId: 'user:2' }, cb), 'find({id, other userId})');
  assert.deepEqual(res, []);
  await ok((cb) => todos.remove(todo.id, cb), 'todos.remove()');
  res = await ok((cb) => todos.find({ id: todo.id }, cb), 'find({id}) after remove');
  assert.deepEqual(res, []);
});

test('count answers the number of matching objects', opts, async () => {
  const things = client.collection(uniq('things'));
  for (const color of ['red', 'red', 'blue']) {
    await ok((cb) => things.insert({ color }, cb), 'things.insert()');
  }
  assert.equal(await ok((cb) => things.count({ color: 'red' }, cb), 'count({color})'), 2);
  assert.equal(await ok((cb) => things.count({}, cb), 'count({})'), 3);
  assert.equal(await ok((cb) => things.count({ color: 'green' }, cb), 'count() of none'), 0);
});

test('findOne answers the object, and 404 with an errors array for an unknown id', opts, async () => {
  const notes = client.collection('notes');
  const note = await ok((cb) => notes.insert({ text: 'hello' }, cb), 'notes.insert()');
  const res = await ok((cb) => notes.findOne(note.id, cb), 'notes.findOne()');
  assert.equal(res.id, note.id);
  assert.equal(res.text, 'hello');
  assert.equal(res.createdAt, note.createdAt);

  const missing = await fails((cb) => notes.findOne('0123456789abcdef01234567', cb), 404, 'findOne(unknown id)');
  assertEdsError(missing);
});

test('update merges the change and answers the complete object', opts, async () => {
  const notes = client.collection('notes');
  const note = await ok((cb) => notes.insert({ text: 'draft', tags: ['a'], done: false }, cb), 'notes.insert()');
  await new Promise((r) => setTimeout(r, 5)); // so that updatedAt can move on
  const res = await ok((cb) => notes.update(note.id, { done: true }, cb), 'notes.update()');
  assert.equal(res.id, note.id);
  assert.equal(res.objectType, 'objects.notes');
  assert.equal(res.done, true);
  assert.equal(res.text, 'draft', 'unmentioned properties stay');
  assert.deepEqual(res.tags, ['a']);
  assert.equal(res.createdAt, note.createdAt);
  assert.match(res.updatedAt, ISO_MS);
  assert.ok(res.updatedAt > note.updatedAt, `updatedAt moves on: ${note.updatedAt} -> ${res.updatedAt}`);

  const read = await ok((cb) => notes.findOne(note.id, cb), 'findOne() after update');
  assert.equal(read.done, true);
  assert.equal(read.text, 'draft');

  const missing = await fails(
    (cb) => notes.update('0123456789abcdef01234567', { done: true }, cb),
    404,
    'update(unknown id)',
  );
  assertEdsError(missing);
});

test('remove answers true, and 404 for an object that is gone', opts, async () => {
  const notes = client.collection('notes');
  const note = await ok((cb) => notes.insert({ text: 'bye' }, cb), 'notes.insert()');
  const { e, res } = await call((cb) => notes.remove(note.id, cb), 'notes.remove()');
  assert.equal(e, null);
  assert.equal(res, true);
  await fails((cb) => notes.findOne(note.id, cb), 404, 'findOne() after remove');
  await fails((cb) => notes.remove(note.id, cb), 404, 'remove() twice');
});

test('a required property refused answers 400 ValidationFailed naming it', opts, async () => {
  const type = uniq('people');
  await defineObjectType(backend, {
    name: type,
    properties: [{ name: 'name', type: 'string', indexed: false }],
    validators: [{ name: 'nameRequired', property: 'name', type: 'required', options: { message: 'is required' } }],
  });
  const people = client.collection(type);
  const res = await fails((cb) => people.insert({ age: 3 }, cb), 400, 'insert() without a required property');
  assertEdsError(res, { property: 'name', reason: 'ValidationFailed' });
  const person = await ok((cb) => people.insert({ name: 'Ann' }, cb), 'insert() with it');
  assert.equal(person.name, 'Ann');
});

test('rest() makes raw requests: GET with a query string, POST and PUT with JSON bodies', opts, async () => {
  const type = uniq('raw');
  const created = await ok(
    (cb) => client.rest('POST', `/objects/${type}`, { body: JSON.stringify({ k: 1 }) }, cb),
    `rest POST /objects/${type}`,
  );
  assert.match(created.id, HEX24);
  assert.equal(created.objectType, `objects.${type}`);

  const list = await ok(
    (cb) => client.rest('GET', `/objects/${type}`, { querystring: { q: JSON.stringify({ k: 1 }), limit: 10 } }, cb),
    `rest GET /objects/${type}?q=`,
  );
  assert.deepEqual(list.results.map((o) => o.id), [created.id]);
  // The list answer echoes the query (spec §1.1.4).
  assert.deepEqual(list.query?.query, { k: 1 });

  const updated = await ok(
    (cb) => client.rest('PUT', `/objects/${type}/${created.id}`, { body: JSON.stringify({ k: 2 }) }, cb),
    'rest PUT',
  );
  assert.equal(updated.k, 2);

  const atomic = await ok(
    (cb) => client.rest('PUT', `/objects/${type}/${created.id}/atomic`, { body: JSON.stringify({ $inc: { k: 3 } }) }, cb),
    'rest PUT .../atomic',
  );
  assert.equal(atomic.k, 5);

  await ok((cb) => client.rest('DELETE', `/objects/${type}/${created.id}`, cb), 'rest DELETE');
  const count = await ok(
    (cb) => client.rest('GET', `/objects/${type}`, { querystring: { count: 1 } }, cb),
    'rest GET ?count=1',
  );
  assert.deepEqual(count, { count: 0 });
});

test('a request without a backend id the server knows is refused with an EDS error', opts, async () => {
  const stranger = eds({ backendId: '0123456789abcdef01234567' });
  const { e, res } = await call((cb) => stranger.collection('x').find({}, cb), 'find() on an unknown backend');
  assert.ok(typeof e === 'number' && e >= 400 && e < 500, `expected a 4xx, got ${e}`);
  assertEdsError(res);
});
