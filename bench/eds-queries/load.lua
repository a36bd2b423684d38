-- Fills Updraft's `bench` collection with objects 0..OBJECTS-1 (the matrix's data set, see
-- bench/run-eds-queries.sh), as bench/lua/loader.lua sends them.
-- Environment: OBJECTS, OWNERS_FILE, BACKEND.
local owners = {}
for line in io.lines(os.getenv("OWNERS_FILE")) do owners[#owners + 1] = line end
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
wrk.headers["Content-Type"] = "application/json"

local function post(i)
  local body = string.format(
    '{"title":"item %d","done":%s,"n":%d,"k":%d,"owner":{"id":"%s","objectType":"users"},"note":"note %d"}',
    i, (i % 2 == 0) and "true" or "false", i, i % 1000, owners[i % 1000 + 1], i)
  return wrk.format("POST", "/v1/objects/bench", nil, body)
end

require("loader")(post)
