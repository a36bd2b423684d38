-- GET objects by id against Parse Server, cycling through the ids in IDS_FILE.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local i = 0
wrk.headers["X-Parse-Application-Id"] = "bench"
request = function()
  i = i % #ids + 1
  return wrk.format("GET", "/parse/classes/Bench/" .. ids[i])
end
