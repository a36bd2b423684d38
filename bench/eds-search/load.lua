-- Fills Updraft's `docs` collection with objects 0..OBJECTS-1 of the search data set: {"body": <four words>,
-- "n": i}, many POSTs in flight. Exits the process once every object is stored, with status 1 at the first
-- failed POST. Environment: OBJECTS, BACKEND, and LUA_PATH finding words.lua.
local words = require("words")
local objects = tonumber(os.getenv("OBJECTS"))
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
wrk.headers["Content-Type"] = "application/json"

local verified, next_object, resend, resend_at = false, 0, {}, 1
local stored, stored_count, sent_all_at = {}, 0, nil

local function post(i)
  local body = string.format('{"body":"%s","n":%d}', table.concat(words.of(i), " "), i)
  return wrk.format("POST", "/v1/objects/docs", nil, body)
end

function request()
  if not verified then
    verified = true
    return wrk.format("GET", "/healthz")
  end
  if next_object < objects then
    next_object = next_object + 1
    return post(next_object - 1)
  end
  if resend_at <= #resend then
    resend_at = resend_at + 1
    return post(resend[resend_at - 1])
  end
  sent_all_at = sent_all_at or os.time()
  if os.time() - sent_all_at >= 10 then
    resend, resend_at, sent_all_at = {}, 1, nil
    for i = 0, objects - 1 do
      if not stored[i] then resend[#resend + 1] = i end
    end
  end
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  if status == 200 then return end
  if status ~= 201 then
    io.stderr:write("a POST failed: " .. status .. " " .. body:sub(1, 300) .. "\n")
    os.exit(1)
  end
  local n = tonumber(body:match('[{,]"n":(%d+)'))
  if n and not stored[n] then
    stored[n] = true
    stored_count = stored_count + 1
    if stored_count % 100000 == 0 then io.stderr:write("  stored " .. stored_count .. "\n") end
    if stored_count == objects then os.exit(0) end
  end
end
