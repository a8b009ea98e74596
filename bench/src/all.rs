//! `bench all`: every scenario in turn on fresh deployments, then one table
//! on the terminal, `bench/report.md` and `bench/report.svg`.
//!
//! `--quick` runs each scenario small (under three minutes in all) and is
//! about correctness, not speed: each scenario checks its invariants (exact
//! coupon counts, stock conservation, no 5xx, which policy priced each
//! order) and fails the run otherwise.

use std::path::PathBuf;

use commerce::coupons::IssueStrategy;

use crate::{
    calls, catalog, catalog_misses, coupons, growth, orders, plot, policy, polyglot, report, swap,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Small runs that check every invariant without judging speed.
    #[arg(long)]
    pub quick: bool,
    /// Where the report goes (default: bench/report.md and bench/report.svg,
    /// or a temporary folder with --quick so a quick run never replaces the
    /// recorded figures).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let quick = args.quick;
    let size = |full: usize, small: usize| if quick { small } else { full };
    let mut rows = Vec::new();

    println!("== catalogue");
    rows.extend(
        catalog::run(catalog::Args {
            products: size(100_000, 5_000) as u64,
            requests: size(100_000, 3_000),
            connections: 64,
            max_seconds: 30,
        })
        .await?,
    );
    println!("== catalogue lists that miss the cache");
    rows.extend(
        catalog_misses::run(catalog_misses::Args {
            products: size(100_000, 5_000) as u64,
            connections: 16,
            detail_connections: 4,
            seconds: size(10, 2) as u64,
        })
        .await?,
    );
    println!("== coupon bursts");
    rows.extend(
        coupons::run(coupons::Args {
            requests: size(20_000, 2_000),
            quantity: size(1_000, 100),
            connections: 64,
            max_seconds: 120,
            warm_up: size(2_000, 200),
            strategies: vec![IssueStrategy::Reserve, IssueStrategy::Lock],
        })
        .await?,
    );
    println!("== orders and payments");
    rows.extend(
        orders::run(orders::Args {
            requests: size(10_000, 500),
            products: 1_000,
            connections: 64,
            max_seconds: size(30, 5) as u64,
        })
        .await?,
    );
    println!("== policy swaps under load");
    rows.extend(
        swap::run(swap::Args {
            requests: size(5_000, 500),
            connections: 64,
            max_seconds: 30,
            every_ms: 100,
        })
        .await?,
    );
    println!("== one policy call, WASM against native");
    rows.extend(
        calls::run(calls::Args {
            calls: size(20_000, 1_000),
        })
        .await?,
    );
    println!("== the order path, WASM against native, and the cost of a shadow");
    rows.extend(
        policy::run(policy::Args {
            requests: size(3_000, 200),
            // Many short alternating rounds: the machine's drift between
            // two runs is several percent, larger than the gap measured.
            rounds: size(8, 1),
            connections: 16,
            max_seconds: 60,
            orders: size(3_000, 300),
            order_connections: 64,
        })
        .await?,
    );
    println!("== policies in TypeScript and Python against Rust and native");
    rows.extend(
        polyglot::run(polyglot::Args {
            calls: size(5_000, 300),
            orders: size(3_000, 300),
            rounds: size(3, 1),
            connections: 64,
            max_seconds: 60,
        })
        .await?,
    );
    println!("== growth");
    let curves = growth::run(growth::Args {
        products: size(100_000, 5_000) as u64,
        requests: size(30_000, 1_000),
        connections: if quick {
            vec![16, 64]
        } else {
            vec![16, 64, 256, 1024]
        },
        instances: if quick { vec![1, 2] } else { vec![1, 2, 3] },
        max_seconds: 20,
        cluster: false,
    })
    .await?;

    println!("\n{}", report::table(&rows));
    print!("{}", growth::markdown(&curves));
    let out = match args.out {
        Some(out) => out,
        None if quick => std::env::temp_dir().join("commerce-bench-quick"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    std::fs::create_dir_all(&out)?;
    let title = if quick {
        "Benchmark report (quick run: sizes too small to judge speed)"
    } else {
        "Benchmark report"
    };
    let mut markdown = report::markdown(title, &report::machine(), &rows);
    markdown.push_str(&growth::markdown(&curves));
    markdown.push_str("\n![throughput and growth](report.svg)\n");
    report::write(&out.join("report.md"), &markdown)?;
    report::write(&out.join("report.svg"), &plot::svg(&rows, Some(&curves)))?;
    println!("\nwrote {} and report.svg", out.join("report.md").display());
    Ok(())
}
