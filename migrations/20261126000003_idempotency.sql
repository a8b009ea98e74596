-- Responses of idempotent requests, written in the same transaction as their
-- effect: a key is either absent (nothing happened) or holds the answer.
create table idempotency_keys (
    user_id          bigint not null,
    key              text not null check (char_length(key) between 1 and 255),
    request_hash     bytea not null,
    response_status  smallint not null,
    -- The body exactly as first sent, so a replay is byte for byte the same.
    response_body    bytea not null,
    created_at       timestamptz not null default now(),
    primary key (user_id, key)
);
-- Pruning reads the oldest first.
create index idempotency_keys_created on idempotency_keys (created_at);
