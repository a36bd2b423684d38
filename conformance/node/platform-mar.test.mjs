// The SDK's platform and MAR calls (node_modules/qtc/lib/platform/qtc-platform.js, lib/mar/qtc-mar.js), as an
// application or a deploy script makes them: a personal access token from the account, clouds, instances of
// each service, the legacy per-instance cloud token, and the MAR calls on an app with that token. Like EDS,
// these requests go to https://<host>:443 whatever the address says.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TEST_TIMEOUT_MS, account, call, fails, ok, qtc, uniq } from './lib/harness.mjs';

const MAR_ADDRESS = 'https://mar.localtest';
const PLATFORM_ADDRESS = 'https://api.localtest';

test('Platform: user, personal access tokens, clouds, instances of every service, cloud log', { timeout: TEST_TIMEOUT_MS }, async () => {
  const asAccount = new qtc.Platform({ address: PLATFORM_ADDRESS, secret: await account() });
  const user = await ok((cb) => asAccount.getUser(cb), 'Platform.getUser()');
  assert.equal(user.id, 'account');
  const made = await ok((cb) => asAccount.createAccessToken(cb), 'Platform.createAccessToken()');
  assert.match(made.access_token, /^[0-9a-f]{64}$/);

  const platform = new qtc.Platform({ address: PLATFORM_ADDRESS, secret: made.access_token });
  const tokens = await ok((cb) => platform.getAccessTokens(cb), 'Platform.getAccessTokens()');
  assert.ok(tokens.results.some((t) => t.id === made.id && !('access_token' in t)));
  const cloud = await ok((cb) => platform.createCloud(uniq('cloud'), cb), 'Platform.createCloud()');
  const clouds = await ok((cb) => platform.getClouds(cb), 'Platform.getClouds()');
  assert.deepEqual(clouds.results.map((c) => c.id).slice(0, 1), ['default']);
  assert.ok(clouds.results.some((c) => c.id === cloud.id));
  const info = await ok((cb) => platform.getCloudInfo(cloud.id, cb), 'Platform.getCloudInfo()');
  assert.equal(info.datacenter.id, 'local-1');

  const app = await ok((cb) => platform.createMarAppInstance(cloud.id, uniq('app'), 1, cb), 'createMarAppInstance()');
  assert.match(app.id, /^mar-local-1-app[0-9a-f]{8}$/);
  const eds = await ok((cb) => platform.createEdsInstance(cloud.id, uniq('eds'), cb), 'createEdsInstance()');
  assert.equal(eds.config.environments.length, 2);
  const mws = await ok((cb) => platform.createMwsInstance(cloud.id, uniq('mws'), cb), 'createMwsInstance()');
  assert.match(mws.id, /^mws-local-1-mws/);
  // No MDB server is configured here: the database is refused, nothing is made.
  await fails((cb) => platform.createMdbInstance(cloud.id, uniq('db'), 1, 'redis', cb), 422, 'createMdbInstance()');

  const apps = await ok((cb) => platform.getCloudInstances(cloud.id, 'mar', cb), 'getCloudInstances(mar)');
  assert.deepEqual(apps.results.map((i) => i.id), [app.id]);
  const tagged = await ok((cb) => platform.setInstanceTags(app.id, ['web'], cb), 'setInstanceTags()');
  assert.deepEqual(tagged.tags, ['web']);
  const log = await ok((cb) => platform.getCloudLog(cloud.id, cb), 'getCloudLog()');
  assert.ok(log.results.some((line) => line.log === `${app.id}: created`), JSON.stringify(log));

  // The legacy cloud token of an instance drives the MAR API of that app.
  const instanceTokens = await ok((cb) => platform.getInstanceTokens(app.id, cb), 'getInstanceTokens()');
  const mar = new qtc.Mar({ address: MAR_ADDRESS, instanceId: app.id, secret: instanceTokens.results[0].access_token });
  const shown = await ok((cb) => mar.getInstanceInfo(cb), 'Mar.getInstanceInfo()');
  assert.equal(shown.id, app.id);
  assert.equal(shown.state, 'created');
  await ok((cb) => mar.setEnvVars({ GREETING: 'hello' }, cb), 'Mar.setEnvVars()');
  const vars = await ok((cb) => mar.getEnvVars(cb), 'Mar.getEnvVars()');
  assert.equal(vars.GREETING, 'hello');
  assert.equal(vars.STACK, 'cedar-14');
  const logs = await ok((cb) => mar.getLogs(cb), 'Mar.getLogs()');
  assert.ok(Array.isArray(logs.results));
  const forged = new qtc.Mar({ address: MAR_ADDRESS, instanceId: app.id, secret: 'forged' });
  await fails((cb) => forged.getEnvVars(cb), 401, 'Mar.getEnvVars() with a forged token');

  // A cloud with instances stays; emptied, it goes. A revoked personal token is refused at once.
  await fails((cb) => platform.removeCloud(cloud.id, cb), 409, 'removeCloud() of a cloud with instances');
  for (const id of [app.id, eds.id, mws.id]) {
    await ok((cb) => platform.rest('DELETE', `instances/${id}`, cb), `DELETE /v1/instances/${id}`);
  }
  await ok((cb) => platform.removeCloud(cloud.id, cb), 'Platform.removeCloud()');
  await ok((cb) => asAccount.removeAccessToken(made.id, cb), 'Platform.removeAccessToken()');
  const revoked = await call((cb) => platform.getClouds(cb), 'getClouds() with a revoked token');
  assert.equal(revoked.e, 401);
});
