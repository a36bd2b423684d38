# The app the qtc-cli suite pushes: Python's standard library only (no buildpack install, no PyPI), so the runtime
# takes it as a Procfile app. It answers every GET with the variables the suite checks and logs one line per start.
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOOT = uuid.uuid4().hex[:12]
DYNO = os.environ.get("DYNO", "?")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"FOO={os.environ.get('FOO', '')} DYNO={DYNO} BOOT={BOOT}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client (the runtime's health check) that does not wait for the body

    def log_message(self, *args):
        pass  # requests are not logged, so `mar logs` stays short


print(f"qtc-cli-app started {DYNO} boot={BOOT}", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
