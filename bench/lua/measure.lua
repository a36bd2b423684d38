-- What every query script of the EDS benchmarks shares (bench/eds-queries, bench/eds-search): one GET a request
-- on the path `path()` gives, with the random generator seeded from SEED, and at the end one line
-- `RESULT {json}`: requests/s, latency percentiles, non-2xx answers (and the first one's body), timeouts and
-- socket errors. A script sets its headers, then calls `require("measure")(path)`.
return function(path)
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
    return wrk.format("GET", path())
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
    local ms = function(p) return latency:percentile(p) / 1000 end
    io.write(string.format(
      'RESULT {"requests":%d,"rps":%.2f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"non2xx":%d,"timeouts":%d,"socket_errors":%d,"first_error":%s}\n',
      summary.requests, summary.requests / seconds, ms(50), ms(95), ms(99), bad, summary.errors.timeout,
      summary.errors.connect + summary.errors.read + summary.errors.write, json_string(first)))
  end
end
