-- POST one small object per request.
wrk.method = "POST"
wrk.body = '{"title":"benchmark","done":false,"n":42}'
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
