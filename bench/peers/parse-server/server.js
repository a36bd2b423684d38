// Parse Server on the local PostgreSQL: the peer measured beside Updraft's EDS (bench/run-eds.sh).
// Configured as its docs suggest for a single node; logs only errors so logging does not skew it.
const express = require('express');
const { ParseServer } = require('parse-server');

const port = Number(process.env.PORT || 18190);
const databaseURI = process.env.DATABASE_URI || 'postgres://postgres@127.0.0.1:5432/parse_bench';

(async () => {
  const parse = new ParseServer({
    databaseURI,
    appId: 'bench',
    masterKey: 'bench-master',
    serverURL: `http://127.0.0.1:${port}/parse`,
    allowClientClassCreation: true,
    logLevel: 'error',
    // Its file logs would land in the caller's working directory.
    logsFolder: require('node:os').tmpdir() + '/parse-server-logs',
  });
  await parse.start();
  const app = express();
  app.use('/parse', parse.app);
  app.listen(port, '127.0.0.1', () => console.log(`parse-server listening on ${port}`));
})();
