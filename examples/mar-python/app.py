"""A sample MAR app: Bottle on $PORT, as `git push` deploys it to Updraft (examples/mar-python/README.md)."""
import os

from bottle import Bottle, request, run

app = Bottle()


@app.route("/")
def hello():
    greeting = os.environ.get("GREETING", "Hello")
    return {"greeting": f"{greeting} from {os.environ.get('MAR_APP_ID')}", "pid": os.getpid(),
            "dyno": os.environ.get("DYNO"), "uid": os.getuid()}


@app.route("/read")
def read():
    """Whether a path is readable from inside the sandbox: the runtime's isolation tests ask."""
    path = request.query.path
    try:
        with open(path, "rb") as f:
            f.read(1)
        return {"path": path, "readable": True}
    except OSError as e:
        return {"path": path, "readable": False, "error": e.strerror}


@app.route("/eat")
def eat():
    """Holds `mb` megabytes: over the app's memory limit, the kernel ends the process."""
    hold = bytearray(int(request.query.mb) << 20)
    for i in range(0, len(hold), 4096):
        hold[i] = 1
    return {"held": len(hold)}


@app.route("/crash")
def crash():
    os._exit(3)


print("starting on port", os.environ["PORT"], flush=True)
run(app, host="127.0.0.1", port=int(os.environ["PORT"]), quiet=True)
