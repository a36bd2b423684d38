// The API reference the server documents itself with: `/openapi.json` is a valid OpenAPI 3.1 document (checked
// by @seriousme/openapi-schema-validator against the OpenAPI Initiative's schemas), and the viewer at `/docs`
// renders it in headless Chromium under its Content-Security-Policy, with no console error.
//
// Started by run.sh, which starts `updraft serve` and passes BROWSER_API_BASE and BROWSER_CHROMIUM.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Validator } from '@seriousme/openapi-schema-validator';
import { chromium } from 'playwright-core';

const API = (process.env.BROWSER_API_BASE ?? '').replace(/\/$/, '');
const CHROMIUM = process.env.BROWSER_CHROMIUM ?? '/usr/bin/chromium';
if (!API) throw new Error('BROWSER_API_BASE is not set (run this suite with conformance/browser/run.sh)');

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
});

test('/openapi.json is a valid OpenAPI 3.1 document', async () => {
  const answer = await fetch(`${API}/openapi.json`);
  assert.equal(answer.status, 200);
  const doc = await answer.json();
  assert.equal(doc.openapi, '3.1.0');
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.ok(result.valid, `not valid OpenAPI: ${JSON.stringify(result, null, 1).slice(0, 4000)}`);
  const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item));
  assert.ok(operations.length > 80, `only ${operations.length} operations`);
});

test('/docs renders the reference without a console error', async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
  const answer = await page.goto(`${API}/docs`);
  assert.equal(answer.status(), 200);
  const policy = answer.headers()['content-security-policy'];
  assert.match(policy, /default-src 'none'/);
  assert.match(policy, /script-src 'self'/);

  await page.waitForSelector('section.operation', { timeout: 15_000 });
  const operations = await page.locator('section.operation').count();
  assert.ok(operations > 80, `only ${operations} operations rendered`);
  // The introduction's tables (who is calling, the error codes) and recorded examples are shown.
  assert.ok(await page.getByRole('cell', { name: 'AccessDenied' }).first().isVisible());
  assert.ok((await page.locator('details pre').count()) > 20, 'few examples rendered');

  // The filter is labelled, and narrows the list.
  const filter = page.getByLabel('Filter');
  await filter.fill('get /deliveries');
  const shown = await page.locator('#operations li[data-search]:not([hidden])').count();
  assert.ok(shown >= 1 && shown <= 4, `${shown} operations left after filtering`);
  // A link of the list leads to its operation.
  await page.locator('#operations li[data-search]:not([hidden]) a').first().click();
  assert.match(page.url(), /#get_webhooks_id_deliveries$/);

  assert.deepEqual(problems, []);
  await page.close();
});
