-- What the loaders of the EDS benchmarks share (bench/eds-queries, bench/eds-search): objects 0..OBJECTS-1 are
-- POSTed in order, many in flight, each answer (the created object, whose `n` is its number) marking it stored.
-- A request lost to a reconnect is never answered: those left unstored ten seconds after the last was sent are
-- sent again. wrk cannot stop after a number of requests, so once every object is stored this exits the process;
-- at the first failed POST it exits with status 1. A script calls `require("loader")(post)`, `post(i)` being the
-- request that creates object i.
return function(post)
  local objects = tonumber(os.getenv("OBJECTS"))
  local verified, next_object, resend, resend_at = false, 0, {}, 1
  local stored, stored_count, sent_all_at = {}, 0, nil
  local RESEND_AFTER_SECONDS = 10
  local function idle()
    return wrk.format("GET", "/healthz")
  end

  function request()
    if not verified then
      -- wrk calls this once before the run to check the script, and drops what it answers.
      verified = true
      return idle()
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
    if os.time() - sent_all_at >= RESEND_AFTER_SECONDS then
      resend, resend_at, sent_all_at = {}, 1, nil
      for i = 0, objects - 1 do
        if not stored[i] then resend[#resend + 1] = i end
      end
      io.stderr:write("  sending " .. #resend .. " unanswered objects again\n")
    end
    return idle()
  end

  function response(status, headers, body)
    if status == 200 then return end -- /healthz
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
end
