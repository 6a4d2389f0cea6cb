-- wrk script: POST /messages with a small JSON message; every request stores one message.
-- The body is the same for every request (building one per request would cost wrk more CPU
-- than the server on a 2-core machine); the store keeps duplicates as separate messages.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":"bench","subject":"load test",' ..
  '"content":"Hello from wrk: a short chat message of about the size people type, ' ..
  'one or two sentences long, nothing more.","chat":"http:alice"}'
