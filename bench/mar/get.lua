-- wrk: `GET /` with the header `Host: $HOST` (the app's host, which Updraft's router routes by; the same bytes go
-- to every target), and the `RESULT {json}` line of bench/lua/measure.lua at the end.
wrk.headers["Host"] = os.getenv("HOST")
require("measure")(function() return "/" end)
