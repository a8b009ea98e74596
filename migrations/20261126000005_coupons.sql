-- First-come-first-served coupons. PostgreSQL is the source of truth: the
-- constraints below hold whatever Redis says or forgets.
create table coupons (
    id                bigint generated always as identity primary key,
    name              text not null check (char_length(name) between 1 and 100),
    discount_kind     text not null check (discount_kind in ('fixed', 'percent')),
    -- Won off for `fixed`, percent off for `percent`.
    discount_value    bigint not null check (discount_value > 0),
    -- Cap of a `percent` discount, in won.
    max_amount        bigint check (max_amount > 0),
    total_quantity    integer not null check (total_quantity between 1 and 10000000),
    issued_quantity   integer not null default 0,
    min_order_amount  bigint not null default 0 check (min_order_amount >= 0),
    valid_from        timestamptz not null,
    valid_until       timestamptz not null,
    -- Highest fencing token that wrote an issuance (the `lock` strategy): a
    -- write carrying an older token lost its lock and is refused.
    fence             bigint not null default 0,
    created_at        timestamptz not null default now(),
    check (issued_quantity between 0 and total_quantity),
    check (valid_from < valid_until),
    check (discount_kind = 'fixed' or discount_value <= 100)
);

-- One row per issued coupon; a user holds a coupon at most once.
create table user_coupons (
    id          bigint generated always as identity primary key,
    coupon_id   bigint not null references coupons (id),
    user_id     bigint not null references users (id),
    status      text not null default 'available' check (status in ('available', 'used')),
    issued_at   timestamptz not null default now(),
    used_at     timestamptz,
    order_id    bigint,
    unique (coupon_id, user_id),
    check ((status = 'used') = (used_at is not null))
);
create index user_coupons_user_newest on user_coupons (user_id, id desc);
