-- One step of the EDS list-query matrix (bench/run-eds-queries.sh) against Updraft or Parse Server, with fresh
-- random parameters for every request so no single answer can be cached.
-- Environment: SYSTEM=updraft|parse, STEP=1..11, OBJECTS, OWNERS_FILE (one owner id a line), SEED,
-- BACKEND (Updraft), SESSION (a session token; empty for an anonymous caller).
-- Prints one line `RESULT {json}` with requests/s, latency percentiles, non-2xx count and the first non-2xx body.
local system = os.getenv("SYSTEM")
local step = tonumber(os.getenv("STEP"))
local objects = tonumber(os.getenv("OBJECTS"))
local session = os.getenv("SESSION") or ""
local owners = {}
for line in io.lines(os.getenv("OWNERS_FILE")) do owners[#owners + 1] = line end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- The query of a step as system-neutral parts: filter (JSON text in EDS syntax, `owner` written as a
-- placeholder), sort key and direction, offset, count.
local function query()
  local r = math.random
  if step == 1 then return { filter = '{"k":' .. r(0, 999) .. '}' } end
  if step == 2 then return { filter = '{"k":' .. r(1000, 1000000000) .. '}' } end
  if step == 3 then return { filter = '{"n":{"$gte":' .. r(0, objects) .. '}}', sort = "n", dir = "asc" } end
  if step == 4 then
    local x = r(0, objects)
    return { filter = '{"n":{"$gte":' .. x .. ',"$lt":' .. (x + math.floor(objects / 10)) .. '}}', sort = "k", dir = "asc" }
  end
  if step == 5 then
    local values = {}
    for i = 1, 10 do values[i] = r(0, 999) end
    return { filter = '{"k":{"$in":[' .. table.concat(values, ",") .. ']}}' }
  end
  if step == 6 then return { owner = owners[r(1, #owners)], sort = "createdAt", dir = "desc" } end
  if step == 7 then
    local digits = r(1, 4)
    return { filter = '{"title":{"$regex":"^item ' .. r(10 ^ (digits - 1), 10 ^ digits - 1) .. '"}}' }
  end
  if step == 8 then
    local x = r(0, objects)
    return { filter = '{"n":{"$gte":' .. x .. ',"$lt":' .. (x + math.floor(objects / 100)) .. '}}', count = true }
  end
  if step == 9 then return { filter = '{}', sort = "n", dir = (r(0, 1) == 0) and "asc" or "desc", offset = 5000 } end
  if step == 10 then return { filter = '{"note":"note ' .. r(0, objects - 1) .. '"}' } end
  -- The one shape with nothing to draw: how many objects there are.
  if step == 11 then return { filter = '{}', count = true } end
  error("unknown STEP " .. tostring(step))
end

local function updraft_path(q)
  local filter = q.filter
  if q.owner then filter = '{"owner":{"id":"' .. q.owner .. '","objectType":"users"}}' end
  local path = "/v1/objects/bench?limit=20&q=" .. urlencode(filter)
  if q.sort then
    path = path .. "&sort=" .. urlencode('[{"sortBy":"' .. q.sort .. '","direction":"' .. q.dir .. '"}]')
  end
  if q.offset then path = path .. "&offset=" .. q.offset end
  if q.count then path = path .. "&count=1" end
  return path
end

local function parse_path(q)
  local filter = q.filter
  if q.owner then filter = '{"owner":{"__type":"Pointer","className":"_User","objectId":"' .. q.owner .. '"}}' end
  local path = "/parse/classes/Bench?"
  if filter ~= "{}" then path = path .. "where=" .. urlencode(filter) .. "&" end
  if q.count then return path .. "count=1&limit=0" end
  path = path .. "limit=20"
  if q.sort then path = path .. "&order=" .. ((q.dir == "desc") and "-" or "") .. q.sort end
  if q.offset then path = path .. "&skip=" .. q.offset end
  return path
end

if system == "updraft" then
  wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
  if session ~= "" then wrk.headers["Enginio-Backend-Session"] = session end
else
  wrk.headers["X-Parse-Application-Id"] = "bench"
  if session ~= "" then wrk.headers["X-Parse-Session-Token"] = session end
end
local render = (system == "updraft") and updraft_path or parse_path

require("measure")(function() return render(query()) end)
