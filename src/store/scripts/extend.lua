-- Extends a lock only if it still holds our token (a holder renews it while it works, so the
-- lock can expire quickly after a holder dies).
-- KEYS: 1 lock; ARGV: 1 token, 2 ttl ms. Returns 1 when extended, 0 when the lock is not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
