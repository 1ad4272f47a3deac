-- Refresh step 5: writes the recomputed node hashes (an all-zero hash removes the field) and
-- releases the claimed buckets, atomically: a crash before this leaves them claimed, to be redone.
--
-- KEYS: 1 merkle:nodes, 2 merkle:claimed
-- ARGV: path, hash, path, hash, ...
-- Returns: the number of node hashes written or removed.

local zero = string.rep('0', 64)
local set, del = {}, {}
for i = 1, #ARGV, 2 do
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
return #ARGV / 2
