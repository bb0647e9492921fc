-- wrk: each request asks for a different node's iPXE script, cycling through
-- every address in $NODES_FILE (one a line). MODE=ours sends GET /boot/ipxe with
-- X-Forwarded-For: <address> (the service trusts it in the bench only), MODE=static
-- asks nginx for /boot/<address>.ipxe, the same script rendered ahead of time.
local addresses = {}
for line in io.lines(os.getenv("NODES_FILE")) do
  addresses[#addresses + 1] = line
end
local mode = os.getenv("MODE") or "ours"
local counter = 0
local thread_offset = 0

function setup(thread)
  thread:set("thread_offset", math.random(#addresses))
end

function request()
  counter = counter + 1
  local address = addresses[((counter + thread_offset) % #addresses) + 1]
  if mode == "static" then
    return wrk.format("GET", "/boot/" .. address .. ".ipxe")
  end
  return wrk.format("GET", "/boot/ipxe", {["X-Forwarded-For"] = address})
end

function done(summary, latency, requests)
  io.write(string.format("non2xx=%d\n", summary.errors.status))
end
