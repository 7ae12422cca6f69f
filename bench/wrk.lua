-- The wrk script behind `make bench` (see bench/load.py, which writes
-- the plan this script reads and parses what it writes).
--
-- wrk runs one connection per thread (-t N -c N), so within a thread request()
-- and response() strictly alternate: each thread times its own requests
-- exactly and writes one line per response, "<end µs> <latency µs> <status>",
-- to its own file. Timestamps come from CLOCK_MONOTONIC, the clock Python's
-- time.monotonic() reads, so the orchestrator can line them up with its own.
--
-- Request n of thread t is a pure function of (t, n), computed from the plan,
-- and n only advances in response(): wrk calls request() once more on thread 0
-- to validate the script, and that call must not use up a student.
--
-- Plans ("kind"):
--   get       GET plan.path; with plan.tokens, rotates through the students
--   hot       POST /courses/<plan.course>/register, student t + threads * n,
--             plan.per_thread requests per thread, then the thread stops
--   full      POST /courses/<plan.course>/register, rotating students, looping
--   spread    POST /courses/<c>/register: thread t owns plan.per_student_block
--             students and walks each of them through every course once, in
--             an order that differs per student, so no pair repeats
--   login     POST /auth/login for student t + threads * n, plan.per_thread
--             requests per thread, then the thread stops
-- With plan.think_ms, each request waits that long after the previous one.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock_buffer = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock_buffer)
  return tonumber(clock_buffer.tv_sec) * 1000000 + math.floor(tonumber(clock_buffer.tv_nsec) / 1000)
end

-- Runs in wrk's main Lua state, once per thread, before that thread's init().
local next_thread_id = 0
function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local plan, out, sent_at
local responses = 0
local finished = false
local build_request

local function bearer(index)
  return { ["Authorization"] = "Bearer " .. plan.tokens[index % #plan.tokens + 1] }
end

local builders = {}

function builders.get(t, n)
  local headers = nil
  if plan.tokens then headers = bearer(t + plan.threads * n) end
  return wrk.format("GET", plan.path, headers)
end

function builders.hot(t, n)
  if n >= plan.per_thread then return nil end
  return wrk.format("POST", "/courses/" .. plan.course .. "/register", bearer(t + plan.threads * n))
end

function builders.full(t, n)
  return wrk.format("POST", "/courses/" .. plan.course .. "/register", bearer(t + plan.threads * n))
end

function builders.spread(t, n)
  local block = plan.per_student_block
  local student = t * block + n % block
  local round = math.floor(n / block)
  if round >= #plan.courses then return nil end
  -- With a course count coprime with 37 (the bench uses 100, and 10 to warm up),
  -- round -> course is a permutation: each student visits each course once.
  local course = plan.courses[(round * 37 + student * 13) % #plan.courses + 1]
  return wrk.format("POST", "/courses/" .. course .. "/register", bearer(student))
end

function builders.login(t, n)
  if n >= plan.per_thread then return nil end
  local number = plan.student_numbers[(t + plan.threads * n) % #plan.student_numbers + 1]
  local body = '{"student_number":"' .. number .. '","password":"' .. plan.password .. '"}'
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" }, body)
end

local function finish()
  if finished then return end
  finished = true
  out:close()
  -- Tell the orchestrator this thread is done: one byte per finished thread.
  local done = io.open(plan.done_path, "a")
  done:write("x")
  done:close()
  wrk.thread:stop()
end

function init(args)
  plan = dofile(args[1])
  build_request = builders[plan.kind]
  out = io.open(plan.out_prefix .. thread_id .. ".txt", "w")
  out:setvbuf("full", 65536)
  if plan.think_ms then
    -- Defined here, before wrk looks for it: wrk then waits this long before each request.
    delay = function() return plan.think_ms end
  end
end

function request()
  local req = build_request(thread_id, responses)
  if req == nil then
    -- Nothing left to send (only reached if the plan ran out early): send a
    -- cheap request that is not recorded, and stop.
    finish()
    return wrk.format("GET", "/health")
  end
  sent_at = now_us()
  return req
end

function response(status, headers, body)
  if finished then return end
  local ended = now_us()
  out:write(ended, " ", ended - sent_at, " ", status, "\n")
  responses = responses + 1
  if plan.per_thread and responses >= plan.per_thread then
    finish()
  end
end
