// EDS full-text search through the SDK's Eds.search(): objectTypes as a comma list, properties as a comma
// string, defaultOperator upper-cased by the SDK (node_modules/qtc/lib/eds/qtc-eds.js).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TEST_TIMEOUT_MS, defineObjectType, eds, newBackend, ok, uniq } from './lib/harness.mjs';

test('search finds objects by phrase across collections', { timeout: TEST_TIMEOUT_MS }, async () => {
  const backend = await newBackend('search');
  const articles = uniq('articles');
  const notes = uniq('notes');
  await defineObjectType(backend, { name: articles, properties: [{ name: 'body', type: 'string', indexed: true }] });
  await defineObjectType(backend, {
    name: notes,
    properties: [{ name: 'title', type: 'string', indexed: true }, { name: 'body', type: 'string', indexed: true }],
  });
  const client = eds(backend);
  const fox = await ok((cb) => client.collection(articles).insert({ body: 'the quick brown fox' }, cb), 'insert()');
  await ok((cb) => client.collection(articles).insert({ body: 'a lazy dog' }, cb), 'insert()');
  const note = await ok((cb) => client.collection(notes).insert({ title: 'Fox café', body: 'notes' }, cb), 'insert()');

  // GET /v1/search?search={"phrase":..,"properties":"body"}&objectTypes=objects.<type>
  const res = await ok((cb) => client.search('fox', [articles], { properties: ['body'] }, cb), 'search()');
  assert.deepEqual(res.results.map((o) => o.id), [fox.id]);

  const both = await ok((cb) => client.search('fox OR dog', [articles, notes], cb), 'search() over two types');
  assert.equal(both.results.length, 3);

  const and = await ok(
    (cb) => client.search('fox cafe', [articles, notes], { defaultOperator: 'and' }, cb),
    'search() with defaultOperator',
  );
  assert.deepEqual(and.results.map((o) => o.id), [note.id]);

  const wildcard = await ok((cb) => client.search('*uic*', [articles, notes], cb), 'search() inside words');
  assert.deepEqual(wildcard.results.map((o) => o.id), [fox.id]);
});
