-- Registers one limiter instance and counts the live ones (server clock).
-- KEYS[1] sorted set of instance id -> last seen (ms)
-- ARGV[1] this instance's id
-- ARGV[2] liveness window in ms
-- Reply: number of instances seen within the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('PEXPIRE', KEYS[1], window * 2)
return redis.call('ZCARD', KEYS[1])
