-- The same insert against Parse Server's REST API.
wrk.method = "POST"
wrk.body = '{"title":"benchmark","done":false,"n":42}'
wrk.headers["X-Parse-Application-Id"] = "bench"
wrk.headers["Content-Type"] = "application/json"
