-- A shadow may run with its own configuration ([[key, value], ...]); null
-- runs it with the active version's, whatever that is at each evaluation.
alter table policy_shadows add column config jsonb;
