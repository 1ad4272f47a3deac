-- Refresh step 1: moves up to ARGV[1] bucket ids from merkle:dirty into merkle:claimed (keeping
-- whatever a crashed refresh left claimed) and returns each claimed bucket with its entries, and
-- the tree's generation (bumped by every commit; lets a refresher trust the node hashes it cached).
--
-- KEYS: 1 merkle:dirty, 2 merkle:claimed, 3 merkle:gen
-- ARGV: 1 max buckets, 2 bucket key prefix ('<prefix>merkle:bucket:')
-- Returns: { { bucket, { key, tuple, key, tuple, ... }, bucket, { ... }, ... }, generation }

local max = tonumber(ARGV[1])
local claimed = redis.call('SMEMBERS', KEYS[2])
local room = max - #claimed
if room > 0 then
  local popped = redis.call('SPOP', KEYS[1], room)
  for i = 1, #popped, 1000 do
    redis.call('SADD', KEYS[2], unpack(popped, i, math.min(i + 999, #popped)))
  end
  for i = 1, #popped do claimed[#claimed + 1] = popped[i] end
end
local out = {}
for i = 1, #claimed do
  out[#out + 1] = claimed[i]
  out[#out + 1] = redis.call('HGETALL', ARGV[2] .. claimed[i])
end
return { out, redis.call('GET', KEYS[3]) or '0' }
