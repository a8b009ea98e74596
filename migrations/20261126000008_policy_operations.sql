-- Policy operations: shadows that try a candidate beside a slot's active
-- version, and the exact policy inputs each order was priced with, for
-- replaying history through a candidate.

-- At most one shadow per slot; a new one replaces it (a new id, counts from zero).
create table policy_shadows (
    id          bigint generated always as identity primary key,
    slot        text not null unique check (slot in ('pricing', 'coupon', 'order_rules')),
    sha256      bytea not null references policy_components (sha256),
    name        text not null,
    version     text not null,
    started_at  timestamptz not null default now(),
    -- Totals of every instance, added in batches.
    evaluated   bigint not null default 0,
    diverged    bigint not null default 0,
    failed      bigint not null default 0,
    dropped     bigint not null default 0
);

-- The newest divergences of a shadow; the instances keep the last 20.
create table policy_shadow_examples (
    id                bigint generated always as identity primary key,
    shadow_id         bigint not null references policy_shadows (id) on delete cascade,
    call              text not null,
    input             jsonb not null,
    active_output     jsonb not null,
    -- Null when the candidate failed, with the reason beside it.
    candidate_output  jsonb,
    candidate_error   text,
    at                timestamptz not null
);
create index policy_shadow_examples_newest on policy_shadow_examples (shadow_id, id desc);

-- What the policies were asked when the order was placed, written in the
-- order's transaction: {"contract", "pricing", "coupon", "order_rules"}, each
-- the call's input record in the runner's JSON (`coupon` null without one).
-- Kept POLICY_INPUT_RETENTION_DAYS days.
create table order_policy_inputs (
    order_id    bigint primary key references orders (id) on delete cascade,
    created_at  timestamptz not null default now(),
    inputs      jsonb not null
);
create index order_policy_inputs_created on order_policy_inputs (created_at);
