-- Refresh step 3: unless another claim or commit happened since this claim (the generation moved),
-- writes the recomputed node hashes (an all-zero hash removes the field), drops merkle:claimed
-- and bumps the generation, atomically. A key written since the claim is dirty again, its mark
-- recording the tuple the claim read (the one these hashes count).
--
-- KEYS: 1 merkle:nodes, 2 merkle:claimed, 3 merkle:gen
-- ARGV: 1 generation after the claim, then path, hash, path, hash, ...
-- Returns: { generation, 1 } when committed, { current generation, 0 } when refused.

local current = redis.call('GET', KEYS[3]) or '0'
if current ~= ARGV[1] then return { current, 0 } end

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
return { tostring(redis.call('INCR', KEYS[3])), 1 }
