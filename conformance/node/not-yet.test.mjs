// SDK calls for services Updraft does not serve yet: MAR and the platform
// API. Each test is skipped with the missing service as its reason; the bodies say what the SDK does, so
// turning one on is removing its `skip`. Their requests go to https://<host>:443 like every EDS call
// (MAR: node_modules/qtc/lib/mar/qtc-mar.js, platform: lib/platform/qtc-platform.js).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TEST_TIMEOUT_MS, call, ok, qtc, uniq } from './lib/harness.mjs';

const MAR = 'the MAR API (/v1/apps/:id/...) is not implemented in Updraft yet';
const PLATFORM = 'the platform API (/v1/user, /v1/accounts, ...) is not implemented in Updraft yet';

const MAR_ADDRESS = 'https://mar.localtest';
const PLATFORM_ADDRESS = 'https://api.localtest';

test('Mar: getInstanceInfo, getEnvVars, setEnvVars, getLogs', { skip: MAR, timeout: TEST_TIMEOUT_MS }, async () => {
  const mar = new qtc.Mar({ address: MAR_ADDRESS, instanceId: 'mar-eu-1-conformance', secret: 'token' });
  const info = await ok((cb) => mar.getInstanceInfo(cb), 'Mar.getInstanceInfo()');
  assert.equal(info.id, 'mar-eu-1-conformance');
  await ok((cb) => mar.setEnvVars({ GREETING: 'hello' }, cb), 'Mar.setEnvVars()');
  const vars = await ok((cb) => mar.getEnvVars(cb), 'Mar.getEnvVars()');
  assert.equal(vars.GREETING, 'hello');
  const logs = await ok((cb) => mar.getLogs(cb), 'Mar.getLogs()');
  assert.ok(Array.isArray(logs.results));
});

test('Platform: getUser, getClouds, createCloud, access tokens', { skip: PLATFORM, timeout: TEST_TIMEOUT_MS }, async () => {
  const platform = new qtc.Platform({ address: PLATFORM_ADDRESS, secret: 'personal-access-token' });
  await ok((cb) => platform.getUser(cb), 'Platform.getUser()');
  const cloud = await ok((cb) => platform.createCloud(uniq('cloud'), cb), 'Platform.createCloud()');
  const clouds = await ok((cb) => platform.getClouds(cb), 'Platform.getClouds()');
  assert.ok(clouds.results.some((c) => c.id === cloud.id));
  const tokens = await ok((cb) => platform.getAccessTokens(cb), 'Platform.getAccessTokens()');
  assert.ok(Array.isArray(tokens.results));
  const removed = await call((cb) => platform.removeCloud(cloud.id, cb), 'Platform.removeCloud()');
  assert.equal(removed.e, null);
});
