-- Every change made through the admin API, written in the change's own
-- transaction: who (`actor`), what (`action` on `target`), and the JSON of
-- what changed before and after.
create table audit_log (
    id     bigint generated always as identity primary key,
    at     timestamptz not null default now(),
    actor  text not null,
    action text not null,
    target text not null,
    before jsonb,
    after  jsonb
);

-- The log is read newest first, whole or by target or by actor.
create index audit_log_by_target on audit_log (target, id desc);
create index audit_log_by_actor on audit_log (actor, id desc);
