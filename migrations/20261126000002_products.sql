create extension if not exists pg_trgm;

create table products (
    id          bigint generated always as identity primary key,
    name        text not null check (char_length(name) between 1 and 200),
    category    text not null check (char_length(category) between 1 and 100),
    price       bigint not null check (price between 0 and 1000000000),
    stock       integer not null check (stock >= 0),
    created_at  timestamptz not null default now()
);

-- One index per sort order, and the same orders within a category, so that a
-- page is read in index order whatever the filter. `id` breaks ties so pages
-- never overlap.
create index products_newest on products (created_at desc, id desc);
create index products_price on products (price, id);
create index products_name on products (name, id);
create index products_category_newest on products (category, created_at desc, id desc);
create index products_category_price on products (category, price, id);
-- Case-insensitive substring search (`name ilike '%x%'`).
create index products_name_trgm on products using gin (name gin_trgm_ops);
-- The in-stock filter on the default sort.
create index products_in_stock_newest on products (created_at desc, id desc) where stock > 0;
