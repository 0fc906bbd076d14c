-- wrk script for the memory scenario: each wrk thread stops after `limit` responses and then
-- appends one line to `marker`.  Usage: wrk ... -s stop_after.lua URL -- LIMIT MARKER
-- (wrk's main thread still sleeps for -d, so bench/run.py sends wrk SIGINT once every thread has
-- written its line; wrk then prints its summary, whose "N requests in ..." is the exact total.)
local limit = 0
local marker = nil
local done = 0
local stopped = false

function init(args)
   limit = tonumber(args[1]) or 0
   marker = args[2]
end

function response(status, headers, body)
   done = done + 1
   if not stopped and limit > 0 and done >= limit then
      stopped = true
      if marker then
         local f = io.open(marker, "a")
         if f then
            f:write(tostring(done) .. "\n")
            f:close()
         end
      end
      wrk.thread:stop()
   end
end
