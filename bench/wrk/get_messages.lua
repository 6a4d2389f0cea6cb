-- wrk script: GET /messages?limit=50 (the URL's path and query come from the command line),
-- reporting through report.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
