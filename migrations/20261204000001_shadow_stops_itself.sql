-- A shadow whose candidate keeps failing stops itself: it stays reported
-- (with why it stopped) until an operator deletes or replaces it, and no
-- instance runs its candidate any more.
alter table policy_shadows
    add column stopped_at     timestamptz,
    add column stopped_reason text;
