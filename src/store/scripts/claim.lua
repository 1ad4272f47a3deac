-- Refresh step 1: takes up to ARGV[1] dirty keys into merkle:claimed (all of them by one RENAME
-- when they fit) and returns each with its bucket, the tuple the tree counts for it and its
-- current tuple. A claim left by a refresh that died before committing is first put back into
-- merkle:dirty, its counted tuple winning over one recorded since. Bumps the generation, so a
-- commit from any earlier claim is refused.
--
-- KEYS: 1 merkle:dirty, 2 merkle:claimed, 3 merkle:gen
-- ARGV: 1 max keys, 2 bucket key prefix ('<prefix>merkle:bucket:'), 3 bucket id length
-- Returns: { { key, bucket, counted tuple, current tuple, ... }, generation before, generation
-- after } ('' = no record)

local max = tonumber(ARGV[1])
local width = tonumber(ARGV[3])

local function hset_pairs(key, flat)
  for i = 1, #flat, 1000 do
    redis.call('HSET', key, unpack(flat, i, math.min(i + 999, #flat)))
  end
end

local left = redis.call('HGETALL', KEYS[2])
if #left > 0 then
  hset_pairs(KEYS[1], left)
  redis.call('DEL', KEYS[2])
end

local before = redis.call('GET', KEYS[3]) or '0'
local marks
local size = redis.call('HLEN', KEYS[1])
if size == 0 then
  return { {}, before, before }
elseif size <= max then
  redis.call('RENAME', KEYS[1], KEYS[2])
  marks = redis.call('HGETALL', KEYS[2])
else
  marks = redis.call('HRANDFIELD', KEYS[1], max, 'WITHVALUES')
  local fields = {}
  for i = 1, #marks, 2 do fields[#fields + 1] = marks[i] end
  for i = 1, #fields, 1000 do
    redis.call('HDEL', KEYS[1], unpack(fields, i, math.min(i + 999, #fields)))
  end
  hset_pairs(KEYS[2], marks)
end

local out = {}
for i = 1, #marks, 2 do
  local key, mark = marks[i], marks[i + 1]
  local bucket = string.sub(mark, 1, width)
  out[#out + 1] = key
  out[#out + 1] = bucket
  out[#out + 1] = string.sub(mark, width + 1)
  out[#out + 1] = redis.call('HGET', ARGV[2] .. bucket, key) or ''
end
return { out, before, tostring(redis.call('INCR', KEYS[3])) }
