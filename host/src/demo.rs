//! Demo data for `commerce serve --demo`: a few users with points, about
//! fifty products in several categories and an open coupon, loaded only into
//! an empty database.

use crate::{
    audit::Actor,
    catalog, coupons,
    identity::{Acting, Signer},
    points,
    state::AppState,
};

/// How long the tokens printed for the demo users last.
const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

const USERS: &[(&str, i64)] = &[("kim", 500_000), ("lee", 120_000), ("park", 30_000)];

const CATALOGUE: &[(&str, &[&str], i64)] = &[
    (
        "electronics",
        &[
            "Wireless Earbuds",
            "Mechanical Keyboard",
            "USB-C Charger",
            "Smart Watch",
            "Bluetooth Speaker",
            "Webcam HD",
            "Portable SSD 1TB",
            "Gaming Mouse",
            "Noise Cancelling Headphones",
            "E-book Reader",
        ],
        39_000,
    ),
    (
        "books",
        &[
            "The Rust Book",
            "Designing Data-Intensive Applications",
            "Clean Architecture",
            "The Pragmatic Programmer",
            "Database Internals",
            "Site Reliability Engineering",
            "Refactoring",
            "Working Effectively with Legacy Code",
            "Domain-Driven Design",
            "Release It!",
        ],
        18_000,
    ),
    (
        "food",
        &[
            "Green Tea 100g",
            "Kimchi 1kg",
            "Instant Ramen 5-pack",
            "Roasted Seaweed",
            "Honey 500g",
            "Coffee Beans 1kg",
            "Rice 10kg",
            "Dark Chocolate",
            "Sesame Oil",
            "Gochujang 500g",
        ],
        6_000,
    ),
    (
        "fashion",
        &[
            "Cotton T-Shirt",
            "Denim Jacket",
            "Running Shoes",
            "Wool Scarf",
            "Leather Belt",
            "Baseball Cap",
            "Rain Coat",
            "Hiking Socks",
            "Linen Shirt",
            "Canvas Tote Bag",
        ],
        25_000,
    ),
    (
        "home",
        &[
            "Ceramic Mug",
            "Desk Lamp",
            "Bamboo Cutting Board",
            "Cast Iron Pan",
            "Throw Blanket",
            "Air Purifier Filter",
            "Glass Storage Set",
            "Wall Clock",
            "Scented Candle",
            "Door Mat",
        ],
        15_000,
    ),
];

/// Loads the demo data unless the database already has users or products.
pub async fn load_if_empty(state: &AppState) -> anyhow::Result<()> {
    let db = &state.db;
    let empty: bool = sqlx::query_scalar(
        "select not exists (select 1 from users) and not exists (select 1 from products)",
    )
    .fetch_one(db)
    .await?;
    if !empty {
        tracing::info!("the database has data; demo data not loaded");
        return Ok(());
    }
    for (name, points) in USERS {
        let user = state.users.create(name).await?;
        let amount = (*points).min(*points::CHARGE_RANGE.end());
        state
            .points
            .charge(Acting::system(user.id), amount, None)
            .await?;
    }
    let mut loaded = 0;
    for (category, names, base_price) in CATALOGUE {
        for (i, name) in names.iter().enumerate() {
            let step = i64::try_from(i).unwrap_or(0);
            state
                .catalog
                .create(
                    &Actor::system(),
                    catalog::NewProduct {
                        name: (*name).to_owned(),
                        category: (*category).to_owned(),
                        price: base_price + step * 1_500,
                        // A sold-out product in every category shows the in_stock filter.
                        stock: if i == 3 { 0 } else { 20 + step * 10 },
                    },
                )
                .await?;
            loaded += 1;
        }
    }
    let now = chrono::Utc::now();
    state
        .coupons
        .create(
            &Actor::system(),
            coupons::NewCoupon {
                name: "Opening month 10%".to_owned(),
                discount: coupons::Discount {
                    kind: coupons::DiscountKind::Percent,
                    value: 10,
                    max_amount: Some(5_000),
                },
                total_quantity: 100,
                min_order_amount: 0,
                valid_from: now,
                valid_until: now + chrono::Duration::days(30),
            },
        )
        .await?;
    tracing::info!(
        users = USERS.len(),
        products = loaded,
        coupons = 1,
        "loaded demo data"
    );
    Ok(())
}

/// Prints a token for each demo user (and an admin one), so a newcomer can
/// call the API with user authentication on.
pub async fn print_tokens(state: &AppState, signer: &Signer) -> anyhow::Result<()> {
    let names: Vec<&str> = USERS.iter().map(|(name, _)| *name).collect();
    let users: Vec<(i64, String)> =
        sqlx::query_as("select id, name from users where name = any($1) order by id")
            .bind(&names)
            .fetch_all(&state.db)
            .await?;
    println!("demo user tokens (valid 24h), for `Authorization: Bearer <token>`:");
    for (id, name) in &users {
        println!(
            "  {name} (user {id}): {}",
            signer.issue(*id, false, TOKEN_TTL)?
        );
    }
    if let Some((id, name)) = users.first() {
        println!(
            "  {name} as admin (user {id}, role admin): {}",
            signer.issue(*id, true, TOKEN_TTL)?
        );
    }
    Ok(())
}
