-- Replay jobs: a candidate component replayed through the orders recorded
-- since a time. The instance that accepted a job runs it and writes its
-- progress here a few times a second; every instance answers from here, so
-- a replay can be followed and cancelled through any of them, and one whose
-- instance died is marked `interrupted` instead of vanishing.
create table replay_jobs (
    id                   uuid primary key,
    slot                 text not null check (slot in ('pricing', 'coupon', 'order_rules')),
    -- The candidate.
    name                 text not null,
    version              text not null,
    sha256               bytea not null check (length(sha256) = 32),
    -- Its bytes, only while the job may still run: cleared when it ends.
    -- They live in the job rather than in `policy_components`, which keeps
    -- every swapped or shadowed component for good (rollbacks and promotions
    -- need them): most replayed candidates are one-off trials that are never
    -- deployed, and would pile up there (up to 24 MB each).
    component            bytea,
    -- [[key, value], ...] the candidate runs every order with; null: each
    -- order's recorded configuration.
    config               jsonb,
    since                timestamptz not null,
    state                text not null default 'queued'
                         check (state in ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    -- Orders recorded since `since` when the run began; null until then.
    total                bigint,
    -- Progress: orders read, and the report's counts so far.
    read                 bigint not null default 0,
    replayed             bigint not null default 0,
    differ               bigint not null default 0,
    failed               bigint not null default 0,
    -- The report so far; final once `done`.
    report               jsonb,
    -- Why the job failed or was interrupted.
    error                text,
    -- The instance that runs it (`host:port`), which beats while it does.
    instance             text not null,
    heartbeat_at         timestamptz not null default now(),
    -- Set by a cancellation; the running instance sees it and stops.
    cancel_requested_at  timestamptz,
    created_at           timestamptz not null default now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    check ((state in ('queued', 'running')) = (finished_at is null))
);
-- Each instance's queue, the deployment-wide cap and the heartbeat sweep.
create index replay_jobs_unfinished on replay_jobs (instance, created_at)
    where state in ('queued', 'running');
create index replay_jobs_newest on replay_jobs (created_at desc);
