-- Writes (merges) an adaptive override on the server clock.
-- KEYS[1] the override hash
-- ARGV[1] pause for this many µs (0 = no pause); never shortens an existing pause
-- ARGV[2] rate factor in (0, 1] ('' = leave as is); replaces an earlier factor
-- ARGV[3] TTL in ms; the key lives at least this long
-- ARGV[4] scope tag: 'a' (provider app) or 'c' (connection)
-- Reply: server time in µs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local pause_for = tonumber(ARGV[1])
if pause_for > 0 then
  local p = now + pause_for
  local old = tonumber(redis.call('HGET', key, 'p'))
  if not old or p > old then
    redis.call('HSET', key, 'p', string.format('%.0f', p))
  end
end
if ARGV[2] ~= '' then
  redis.call('HSET', key, 'f', ARGV[2])
end
redis.call('HSET', key, 's', ARGV[4])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ttl)
end
return now
