// Parse Server on the local PostgreSQL: the peer measured beside Updraft's EDS (bench/run-eds.sh) and its realtime
// paths (bench/run-realtime.sh). Configured as its docs suggest for a single node; logs only errors so logging
// does not skew it.
//
// Optional, for bench/run-realtime.sh (unset, the server is exactly the one bench/run-eds.sh measures):
//   LIVE_QUERY_CLASSES=Todo   LiveQuery for these classes (comma-separated), served on the same port and path;
//                             events go through Parse's default in-process pub/sub (no Redis).
//   WEBHOOK_KEY=...           sent as X-Parse-Webhook-Key with every hook request (Parse's webhook authentication).
//   FILES_DIR=...             files on the local disk under this directory (Parse's FS adapter, its choice
//                             without MongoDB), with uploads up to 2 GiB (bench/run-files.sh).
const express = require('express');
const { ParseServer } = require('parse-server');

const port = Number(process.env.PORT || 18190);
const databaseURI = process.env.DATABASE_URI || 'postgres://postgres@127.0.0.1:5432/parse_bench';
const liveQueryClasses = (process.env.LIVE_QUERY_CLASSES || '').split(',').filter(Boolean);

(async () => {
  const options = {
    databaseURI,
    appId: 'bench',
    masterKey: 'bench-master',
    serverURL: `http://127.0.0.1:${port}/parse`,
    allowClientClassCreation: true,
    // The load generator spreads its connections over 127.0.x.y source addresses (the default is 127.0.0.1 only).
    masterKeyIps: ['127.0.0.0/8', '::1'],
    logLevel: 'error',
    // Its file logs would land in the caller's working directory.
    logsFolder: require('node:os').tmpdir() + '/parse-server-logs',
  };
  if (liveQueryClasses.length > 0) options.liveQuery = { classNames: liveQueryClasses };
  if (process.env.WEBHOOK_KEY) options.webhookKey = process.env.WEBHOOK_KEY;
  if (process.env.FILES_DIR) {
    const FileSystemAdapter = require('@parse/fs-files-adapter');
    process.chdir(process.env.FILES_DIR);
    options.filesAdapter = new FileSystemAdapter({ filesSubDirectory: 'bench' });
    options.maxUploadSize = '2gb';
    // Updraft's open backend takes uploads from anyone: the same here.
    options.fileUpload = { enableForPublic: true, enableForAnonymousUser: true };
  }
  const parse = new ParseServer(options);
  await parse.start();
  const app = express();
  app.use('/parse', parse.app);
  const server = app.listen(port, '127.0.0.1', () => console.log(`parse-server listening on ${port}`));
  if (liveQueryClasses.length > 0) {
    await ParseServer.createLiveQueryServer(server, { logLevel: 'ERROR' });
  }
})();
