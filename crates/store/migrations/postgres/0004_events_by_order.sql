-- Refunds find the redemptions of their order by it (purchases, which have
-- no order_key, are not indexed).
CREATE INDEX events_by_order ON events (program_id, order_key) WHERE order_key IS NOT NULL;
