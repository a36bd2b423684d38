// The npm SDK's snippets of the user guide (docs/clients/npm.md, code blocks marked ```js,test), run as a
// reader runs them: as a program of their own, with `qtc` from this suite's packages and the variables the page
// names, against the server conformance/run.sh started. The program must exit 0 and print what the page says.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';

import { TEST_TIMEOUT_MS, env, newBackend, newGateway } from './lib/harness.mjs';

const page = new URL('../../docs/clients/npm.md', import.meta.url);
const program = new URL('./guide-snippet.cjs', import.meta.url);

test('the npm page of the guide runs', { timeout: TEST_TIMEOUT_MS }, async () => {
  const blocks = [...readFileSync(page, 'utf8').matchAll(/^```js,test\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  assert.ok(blocks.length > 0, 'no ```js,test block in docs/clients/npm.md');
  const backend = await newBackend('guide');
  const gateway = await newGateway({ identityProvider: 'custom' });
  writeFileSync(program, blocks.join('\n'));
  try {
    const run = spawnSync(process.execPath, [program.pathname], {
      encoding: 'utf8',
      timeout: TEST_TIMEOUT_MS - 2000,
      env: {
        ...process.env,
        EDS_ADDRESS: env.edsAddress,
        MWS_ADDRESS: env.mwsAddress,
        BACKEND: backend.backendId,
        SECRET: backend.secret,
        GATEWAY: gateway.id,
        GATEWAY_TOKEN: gateway.securityToken,
      },
    });
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, output);
    assert.match(run.stdout, /open todos: Buy milk/);
    assert.match(run.stdout, /received: hello from node/);
  } finally {
    rmSync(program, { force: true });
  }
});
