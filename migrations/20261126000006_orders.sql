create table orders (
    id                  bigint generated always as identity primary key,
    user_id             bigint not null references users (id),
    status              text not null default 'pending_payment'
                        check (status in ('pending_payment', 'paid', 'cancelled', 'expired')),
    subtotal            bigint not null check (subtotal >= 0),
    discount            bigint not null check (discount >= 0),
    total               bigint not null check (total >= 0),
    user_coupon_id      bigint references user_coupons (id),
    -- `name@version` of each policy that priced the order, and their digests.
    pricing_policy      text not null,
    coupon_policy       text not null,
    order_rules_policy  text not null,
    policy_sha256       jsonb not null,
    created_at          timestamptz not null default now(),
    expires_at          timestamptz not null,
    paid_at             timestamptz,
    closed_at           timestamptz,
    check (total = subtotal - discount)
);
create index orders_user_newest on orders (user_id, id desc);
-- The expiry job reads only orders still waiting for payment.
create index orders_awaiting_payment on orders (expires_at) where status = 'pending_payment';
-- Popular products read paid orders of the last days.
create index orders_paid_recent on orders (created_at) where status = 'paid';

create table order_lines (
    order_id    bigint not null references orders (id),
    line_no     integer not null,
    product_id  bigint not null references products (id),
    name        text not null,
    quantity    integer not null check (quantity > 0),
    unit_price  bigint not null check (unit_price >= 0),
    discount    bigint not null check (discount >= 0),
    line_total  bigint not null check (line_total >= 0),
    primary key (order_id, line_no)
);

create table payments (
    id             bigint generated always as identity primary key,
    order_id       bigint not null unique references orders (id),
    user_id        bigint not null references users (id),
    amount         bigint not null check (amount >= 0),
    balance_after  bigint not null check (balance_after >= 0),
    paid_at        timestamptz not null default now(),
    refunded_at    timestamptz
);

-- Events written in the transaction of their cause and published to Redis
-- by the relay, at least once.
create table outbox (
    id            bigint generated always as identity primary key,
    event_id      uuid not null unique default gen_random_uuid(),
    type          text not null,
    order_id      bigint not null,
    payload       jsonb not null,
    created_at    timestamptz not null default now(),
    published_at  timestamptz
);
create index outbox_unpublished on outbox (id) where published_at is null;
