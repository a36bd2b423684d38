-- A claimed delivery (`postgres/webhooks.rs`): its `next_ms` is pushed a lease ahead while a worker attempts it,
-- and `claimed_until` says so, so that a redelivery asked for meanwhile does not make it due for a second worker
-- while the first one's attempt is still out. NULL: not claimed (never, or the claim ended with an outcome).
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT;
