-- A refund gives back what an order took, even when charges since then
-- brought the wallet near the cap: the cap of 100,000,000 bounds charges (the
-- server checks it), not refunds, so the database only keeps balances >= 0.
alter table point_wallets drop constraint point_wallets_balance_check;
alter table point_wallets add constraint point_wallets_balance_check check (balance >= 0);

-- Each order line keeps why the pricing policy took something off, as quotes show it.
alter table order_lines add column reason text not null default '';

-- Published outbox events are pruned after a retention; this finds them.
create index if not exists outbox_published_at on outbox (published_at) where published_at is not null;
