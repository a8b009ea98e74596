-- users and their point wallets.
create table users (
    id          bigint generated always as identity primary key,
    name        text not null check (char_length(name) between 1 and 100),
    created_at  timestamptz not null default now()
);

-- One wallet per user. `version` is the optimistic-concurrency counter: every
-- update says which version it read, and loses (0 rows) when another won.
create table point_wallets (
    user_id     bigint primary key references users (id),
    balance     bigint not null default 0 check (balance between 0 and 100000000),
    version     bigint not null default 0,
    updated_at  timestamptz not null default now()
);

-- Every change of a balance, so that a balance always equals the sum of its
-- history: charge and refund add `amount`, use takes it off.
create table point_history (
    id             bigint generated always as identity primary key,
    user_id        bigint not null references users (id),
    kind           text not null check (kind in ('charge', 'use', 'refund')),
    amount         bigint not null check (amount > 0),
    balance_after  bigint not null check (balance_after >= 0),
    order_id       bigint,
    created_at     timestamptz not null default now()
);
create index point_history_user_newest on point_history (user_id, id desc);
