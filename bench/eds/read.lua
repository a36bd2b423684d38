-- GET objects by id, cycling through the ids in IDS_FILE.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local i = 0
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
request = function()
  i = i % #ids + 1
  return wrk.format("GET", "/v1/objects/bench/" .. ids[i])
end
