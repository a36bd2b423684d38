-- One step of the search benchmark (bench/run-eds-search.sh) against Updraft or Parse Server, with fresh random
-- words for every request. Steps: 1 one word (about 400 objects, 20 returned); 2 two words that occur together
-- (two words of one random object, both required); 3 the count of one word.
-- Environment: SYSTEM=updraft|parse, STEP, OBJECTS, SEED, BACKEND (Updraft), SESSION (empty: anonymous).
-- Prints `RESULT {json}` as bench/eds-queries/query.lua does.
local words = require("words")
local system = os.getenv("SYSTEM")
local step = tonumber(os.getenv("STEP"))
local objects = tonumber(os.getenv("OBJECTS"))
local session = os.getenv("SESSION") or ""

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- The words and whether all are required.
local function query()
  if step == 1 or step == 3 then return { words.word(math.random(0, words.VOCABULARY - 1)) } end
  if step == 2 then
    local of = words.of(math.random(0, objects - 1))
    return { of[1], of[3] }
  end
  error("unknown STEP " .. tostring(step))
end

local function updraft_path(terms)
  local search = '{"phrase":"' .. table.concat(terms, " AND ") .. '","properties":["body"]}'
  local path = "/v1/search?objectTypes%5B%5D=objects.docs&search=" .. urlencode(search)
  if step == 3 then return path .. "&count=1" end
  return path .. "&limit=20"
end

local function parse_path(terms)
  local where = '{"body":{"$text":{"$search":{"$term":"' .. table.concat(terms, " & ") .. '","$language":"simple"}}}}'
  local path = "/parse/classes/Docs?where=" .. urlencode(where)
  if step == 3 then return path .. "&count=1&limit=0" end
  return path .. "&limit=20"
end

if system == "updraft" then
  wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
  if session ~= "" then wrk.headers["Enginio-Backend-Session"] = session end
else
  wrk.headers["X-Parse-Application-Id"] = "bench"
  if session ~= "" then wrk.headers["X-Parse-Session-Token"] = session end
end
local render = (system == "updraft") and updraft_path or parse_path
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(tonumber(os.getenv("SEED") or "1"))
  non2xx = 0
  first_error = ""
end

function request()
  return wrk.format("GET", render(query()))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
  end
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    if first == "" then first = thread:get("first_error") end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests":%d,"rps":%.2f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"non2xx":%d,"timeouts":%d,"socket_errors":%d,"first_error":%s}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, bad,
    summary.errors.timeout, summary.errors.connect + summary.errors.read + summary.errors.write, json_string(first)))
end
