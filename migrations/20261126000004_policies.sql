-- The deployment's policy state. Every instance serves the latest
-- activation of each slot that is not retired; a rollback retires it.

-- Component bytes, stored once per content.
create table policy_components (
    sha256      bytea primary key check (length(sha256) = 32),
    bytes       bytea not null,
    created_at  timestamptz not null default now()
);

create table policy_versions (
    id            bigint generated always as identity primary key,
    slot          text not null check (slot in ('pricing', 'coupon', 'order_rules')),
    sha256        bytea not null references policy_components (sha256),
    name          text not null,
    version       text not null,
    -- The slot's configuration as [[key, value], ...].
    config        jsonb not null default '[]',
    -- `manifest:<file>` or `upload`.
    source        text not null,
    activated_at  timestamptz not null default now(),
    retired_at    timestamptz
);
create index policy_versions_live on policy_versions (slot, id desc) where retired_at is null;
