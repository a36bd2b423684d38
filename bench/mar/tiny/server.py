"""The tiny app's `web` process with BACKEND=python: `ok` to every request on $PORT, HTTP/1.1 keep-alive, on
asyncio's bare protocol (no framework, no parsing beyond the end of each request head: GETs without a body)."""
import asyncio
import os

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        self.pending += data
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            self.pending = self.pending[end + 4:]
            self.transport.write(ANSWER)


async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(os.environ["PORT"]))
    await server.serve_forever()


asyncio.run(main())
