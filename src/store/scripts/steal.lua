-- Takes over a lock whose holder is known to be gone, only if it still holds that holder's token.
-- KEYS: 1 lock; ARGV: 1 dead holder's token, 2 our token, 3 ttl ms. Returns 1 when taken.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
