// A sample MAR app: Node's http server on $PORT, with one dependency to install (examples/mar-node/README.md).
const http = require("http");
const ms = require("ms");

http
  .createServer((req, res) => {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ greeting: `Hello from ${process.env.MAR_APP_ID}`, day: ms("1d"), pid: process.pid }));
  })
  .listen(Number(process.env.PORT), "127.0.0.1", () => console.log(`listening on ${process.env.PORT}`));
