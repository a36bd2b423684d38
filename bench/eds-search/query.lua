-- One step of the search benchmark (bench/run-eds-search.sh) against Updraft or Parse Server, with fresh random
-- words for every request. Steps: 1 one word (about 400 objects a million, the 20 most relevant returned); 2 two
-- words that occur together (two words of one random object, both required), ranked alike; 3 the count of one
-- word.
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
  -- Ranked by relevance, as Updraft ranks: Parse's text score (ts_rank_cd), which it returns as a key.
  return path .. "&limit=20&order=%24score&keys=%24score%2Cbody%2Cn"
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
