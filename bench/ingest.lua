-- wrk script of bench/ingest.py: every request a new Alertmanager notification of 2 alerts.
--
-- wrk -s ingest.lua URL -- TEMPLATES AUTHORIZATION TURN
--   TEMPLATES: a file of notification bodies, one a line, in which "@ID@" stands for what makes a
--   request new (its groupKey, cluster, instances and fingerprints all contain it);
--   AUTHORIZATION: the Authorization header to send, or "" for none;
--   TURN: 1-255, a number no other wrk run on the same server had (each run counts from 1 again).
-- done() prints one line, "ingest.lua {json}": answers (all, 2xx, other), seconds, answers per
-- second, latency p50/p99, the count of each status, wrk's socket errors and timeouts, and wrk's
-- latency histogram.

local threads = {}

function setup(thread)
   -- Runs in wrk's main Lua state; each thread has a state of its own, numbered here from 1.
   table.insert(threads, thread)
   thread:set("number", #threads)
end

function init(args)
   templates = {}
   for line in io.lines(args[1]) do
      table.insert(templates, line)
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["User-Agent"] = "Alertmanager/0.25.0"
   if args[2] ~= "" then
      wrk.headers["Authorization"] = args[2]
   end
   turn = tonumber(args[3])
   sent = 0
   statuses = {}
end

function request()
   sent = sent + 1
   -- 14 hex digits, as the bench's own probe has them (turn 0 there, never a wrk run's).
   local id = string.format("%02x%02x%010x", turn, number, sent)
   local body = templates[sent % #templates + 1]:gsub("@ID@", id)
   return wrk.format(nil, nil, nil, body .. "\n")
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local by_status, ok = {}, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
         if status >= 200 and status < 300 then
            ok = ok + count
         end
      end
   end
   local counts = {}
   for status, count in pairs(by_status) do
      table.insert(counts, string.format('"%d": %d', status, count))
   end
   -- wrk's histogram, from which the bench pools a target's turns: [µs, answers] pairs.
   local histogram = {}
   for i = 1, #latency do
      local micros, count = latency(i)
      table.insert(histogram, string.format("[%d, %d]", micros, count))
   end
   local errors = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'ingest.lua {"requests": %d, "2xx": %d, "non_2xx": %d, "seconds": %.6f, "requests_per_s": %.1f, '
         .. '"p50_ms": %.3f, "p99_ms": %.3f, "statuses": {%s}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "latency_us": [%s]}\n',
      summary.requests, ok, summary.requests - ok, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(counts, ", "),
      errors.connect, errors.read, errors.write, errors.timeout, table.concat(histogram, ", ")
   ))
end
