// The tiny app's `web` process with BACKEND=node: `ok` to every request on $PORT, Node's own http server.
const http = require('node:http');

const body = Buffer.from('ok\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
