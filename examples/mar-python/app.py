"""A sample MAR app: Bottle on $PORT, as `git push` deploys it to Updraft (examples/mar-python/README.md)."""
import os
from urllib.parse import unquote, urlparse

import pg8000.native
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


def database():
    """A connection to the managed database attached to the app (`DATABASE_URL`)."""
    url = urlparse(os.environ["DATABASE_URL"])
    return pg8000.native.Connection(user=unquote(url.username), password=unquote(url.password), host=url.hostname,
                                    port=url.port or 5432, database=url.path.lstrip("/"))


@app.route("/todos", method="POST")
def add_todo():
    db = database()
    try:
        db.run("CREATE TABLE IF NOT EXISTS todos (id serial PRIMARY KEY, title text NOT NULL)")
        db.run("INSERT INTO todos (title) VALUES (:title)", title=request.json["title"])
    finally:
        db.close()
    return list_todos()


@app.route("/todos")
def list_todos():
    db = database()
    try:
        rows = db.run("SELECT title, current_user FROM todos ORDER BY id")
    finally:
        db.close()
    return {"todos": [title for title, _ in rows], "user": rows[0][1] if rows else None}


@app.route("/crash")
def crash():
    os._exit(3)


print("starting on port", os.environ["PORT"], flush=True)
run(app, host="127.0.0.1", port=int(os.environ["PORT"]), quiet=True)
