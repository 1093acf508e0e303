-- Multi-level GCRA on the server clock, all-or-nothing, one round trip.
-- Mirrors src/gcra.rs (decide / decide_all / Gcra::scaled) line for line.
--
-- KEYS: the override hashes first (ARGV[3] of them), then one TAT key per level.
-- ARGV[1]  mode: 'take' (decide and spend) or 'refund' (give back a take)
-- ARGV[2]  cost in units
-- ARGV[3]  number of override keys
-- ARGV[4..] per level, three values: emission interval (µs), burst,
--           kind ('a' = app level, slowed by provider overrides;
--                 'c' = connection/endpoint level, slowed by connection overrides)
-- Override hash fields: p = paused until (µs), f = rate factor in (0, 1), s = 'a' | 'c'.
--
-- Reply: { allowed 1|0,
--          blocking level (1-based among the levels; 0 = none; -1 = override pause),
--          retry after in µs (-1 = never: the cost exceeds the burst),
--          server time in µs }
-- TAT keys expire when their state stops mattering (new_tat - now).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local nov = tonumber(ARGV[3])
local nlev = #KEYS - nov

-- Lua 5.1 prints large numbers in %.14g; integers must be written exactly.
local function int(x) return string.format('%.0f', x) end
local function ttl_ms(tat) return math.max(1, math.ceil((tat - now) / 1000)) end

if mode == 'refund' then
  for i = 1, nlev do
    local key = KEYS[nov + i]
    local tat = tonumber(redis.call('GET', key))
    if tat then
      local nt = tat - tonumber(ARGV[1 + 3 * i]) * cost
      if nt > now then
        redis.call('SET', key, int(nt), 'PX', ttl_ms(nt))
      else
        redis.call('DEL', key)
      end
    end
  end
  return { 1, 0, 0, now }
end

local pause, fa, fc = 0, 1, 1
for j = 1, nov do
  local o = redis.call('HMGET', KEYS[j], 'p', 'f', 's')
  local p, f = tonumber(o[1]), tonumber(o[2])
  if p and p > pause then pause = p end
  if f and f > 0 and f < 1 then
    if o[3] == 'a' then
      if f < fa then fa = f end
    elseif f < fc then
      fc = f
    end
  end
end
if pause > now then
  return { 0, -1, pause - now, now }
end

local news = {}
local worst, lvl = 0, 0
for i = 1, nlev do
  local em = tonumber(ARGV[1 + 3 * i])
  local burst = tonumber(ARGV[2 + 3 * i])
  local f = fc
  if ARGV[3 + 3 * i] == 'a' then f = fa end
  if f < 1 then
    em = math.max(1, math.ceil(em / f))
    burst = math.max(1, math.floor(burst * f))
  end
  local cap = em * burst
  local inc = em * cost
  local tat = tonumber(redis.call('GET', KEYS[nov + i])) or 0
  if tat < now then tat = now end
  local nt = tat + inc
  news[i] = nt
  local wait = 0
  if inc > cap then
    wait = math.huge
  else
    wait = nt - now - cap
  end
  if wait > 0 and (lvl == 0 or wait > worst) then
    worst, lvl = wait, i
  end
end
if lvl ~= 0 then
  if worst == math.huge then worst = -1 end
  return { 0, lvl, worst, now }
end
for i = 1, nlev do
  redis.call('SET', KEYS[nov + i], int(news[i]), 'PX', ttl_ms(news[i]))
end
return { 1, 0, 0, now }
