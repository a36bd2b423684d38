-- Fills Updraft's `docs` collection with objects 0..OBJECTS-1 of the search data set: {"body": <four words>,
-- "n": i}, as bench/lua/loader.lua sends them. Environment: OBJECTS, BACKEND, and LUA_PATH finding words.lua
-- and bench/lua.
local words = require("words")
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
wrk.headers["Content-Type"] = "application/json"

local function post(i)
  local body = string.format('{"body":"%s","n":%d}', table.concat(words.of(i), " "), i)
  return wrk.format("POST", "/v1/objects/docs", nil, body)
end

require("loader")(post)
