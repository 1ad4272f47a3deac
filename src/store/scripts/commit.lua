-- Refresh step 5: writes the recomputed node hashes (an all-zero hash removes the field), releases
-- the claimed buckets and bumps the tree's generation, atomically: a crash before this leaves the
-- buckets claimed, to be redone.
--
-- KEYS: 1 merkle:nodes, 2 merkle:claimed, 3 merkle:gen
-- ARGV: 1 generation the hashes were computed from, then path, hash, path, hash, ...
-- Returns: { new generation, 1 if the generation was still ARGV[1] (no other commit since) else 0 }

local zero = string.rep('0', 64)
local set, del = {}, {}
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == zero then
    del[#del + 1] = ARGV[i]
  else
    set[#set + 1] = ARGV[i]
    set[#set + 1] = ARGV[i + 1]
  end
end
for i = 1, #set, 1000 do
  redis.call('HSET', KEYS[1], unpack(set, i, math.min(i + 999, #set)))
end
for i = 1, #del, 1000 do
  redis.call('HDEL', KEYS[1], unpack(del, i, math.min(i + 999, #del)))
end
redis.call('DEL', KEYS[2])
local previous = redis.call('GET', KEYS[3]) or '0'
local gen = redis.call('INCR', KEYS[3])
return { tostring(gen), previous == ARGV[1] and 1 or 0 }
