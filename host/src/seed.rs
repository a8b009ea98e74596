//! `commerce seed --products N`: synthetic products for benchmarks, loaded
//! with `COPY` in batches.

use std::fmt::Write;

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

/// The categories seeded products are spread over, ten in turn.
pub const CATEGORIES: &[&str] = &[
    "electronics",
    "books",
    "food",
    "fashion",
    "home",
    "sports",
    "beauty",
    "toys",
    "garden",
    "office",
];
const WORDS: &[&str] = &[
    "Classic", "Smart", "Organic", "Compact", "Deluxe", "Eco", "Premium", "Travel", "Mini", "Pro",
];
const BATCH: u64 = 10_000;

pub async fn products(db: &PgPool, count: u64) -> anyhow::Result<()> {
    let bar = ProgressBar::new(count).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} products {per_sec} eta {eta}",
    )?);
    let mut done = 0;
    while done < count {
        let batch = BATCH.min(count - done);
        let mut rows = String::with_capacity(usize::try_from(batch)? * 64);
        for n in done..done + batch {
            let category = CATEGORIES[(n % 10) as usize];
            let word = WORDS[(n / 10 % 10) as usize];
            // A spread of prices, stock (one in twenty sold out) and ages.
            let price = 1_000 + (n * 7_919 % 500) * 500;
            let stock = if n % 20 == 0 { 0 } else { n * 31 % 1_000 };
            let age_seconds = n * 37 % (365 * 24 * 3_600);
            writeln!(
                rows,
                "{word} {category} item {n}\t{category}\t{price}\t{stock}\t{}",
                chrono::Utc::now() - chrono::Duration::seconds(i64::try_from(age_seconds)?)
            )?;
        }
        let mut conn = db.acquire().await?;
        let mut copy = conn
            .copy_in_raw("copy products (name, category, price, stock, created_at) from stdin")
            .await?;
        copy.send(rows.into_bytes()).await?;
        copy.finish().await?;
        done += batch;
        bar.set_position(done);
    }
    bar.finish();
    sqlx::query("analyze products").execute(db).await?;
    tracing::info!(products = count, "seeded");
    Ok(())
}
