//! `bench coupons`: a burst of issue requests, each from a distinct user, for
//! one coupon across two instances, once per issuance strategy, after the
//! ceiling (the same requests to an endpoint that makes one Redis script
//! call and nothing else). Gives a report row per strategy, and checks after
//! each run that the coupon was issued exactly `quantity` times and every
//! other request was answered `COUPON_SOLD_OUT`.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use chrono::Utc;
use commerce::coupons::{self, Discount, DiscountKind, IssueStrategy, NewCoupon};
use tokio_util::sync::CancellationToken;

use crate::{
    ceiling,
    load::{self, Call, Report, Shape},
    report::Row,
    servers::Deployment,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Issue requests per strategy, each from a distinct user.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// The coupon's total quantity.
    #[arg(long, default_value_t = 1_000)]
    pub quantity: usize,
    /// Connections of the load generator, spread over the two instances.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Time bound of one run, in seconds.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Requests of the unmeasured warm-up before each run, on another coupon.
    #[arg(long, default_value_t = 2_000)]
    pub warm_up: usize,
    /// Strategies to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [IssueStrategy::Reserve, IssueStrategy::Lock]
    )]
    pub strategies: Vec<IssueStrategy>,
}

/// The quantity of the refusals-only burst.
const REFUSALS_QUANTITY: usize = 10;

/// The HS256 secret of the burst with user tokens.
const JWT_SECRET: &str = "the-bench-hs256-secret-of-at-least-32-bytes";

/// Whether each request carries its user's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tokens {
    Without,
    With,
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let shape = Shape {
        connections: args.connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    let warm_up = Shape {
        requests: args.warm_up,
        ..shape
    };
    println!(
        "coupons: {} issue requests from distinct users for a coupon of {}, \
         {} connections over two instances",
        thousands(args.requests),
        thousands(args.quantity),
        args.connections
    );

    // The ceiling's servers run throughout, and the ceiling is measured
    // again right before each burst: on a shared machine, a ceiling taken
    // minutes earlier would judge a burst against other conditions.
    let stop = CancellationToken::new();
    let ceiling = Ceiling {
        targets: ceiling::start(stop.clone()).await?,
        shape,
    };
    load::run(&ceiling.targets, warm_up, Ceiling::request).await?;

    let mut runs = Vec::new();
    let mut with_tokens = None;
    for &strategy in &args.strategies {
        let measured = burst(
            strategy,
            args.quantity,
            &args,
            &ceiling,
            warm_up,
            Tokens::Without,
        )
        .await?;
        runs.push((strategy, measured));
        // The same burst with a user token on every request, right after the
        // one without, so the two compare within one run.
        if strategy == IssueStrategy::Reserve {
            let (with, _) = burst(
                strategy,
                args.quantity,
                &args,
                &ceiling,
                warm_up,
                Tokens::With,
            )
            .await?;
            with_tokens = Some(with);
        }
    }
    // The same burst with next to nothing to issue: what the refusals cost
    // alone, so that the report tells it from what the issuances cost.
    let refusals = if args.strategies.contains(&IssueStrategy::Reserve) {
        let quantity = REFUSALS_QUANTITY.min(args.quantity);
        Some(
            burst(
                IssueStrategy::Reserve,
                quantity,
                &args,
                &ceiling,
                warm_up,
                Tokens::Without,
            )
            .await?,
        )
    } else {
        None
    };
    stop.cancel();

    let mut rows = Vec::new();
    if let Some((_, (_, first))) = runs.first() {
        rows.push(Row::new(
            "HTTP + one Redis script",
            first,
            "itself",
            first.per_second(),
        ));
    }
    for (strategy, (report, ceiling)) in &runs {
        let outcomes: Vec<String> = report
            .outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome} × {}", thousands(*count)))
            .collect();
        let row = Row::new(
            format!(
                "coupon burst, {}: {} users for {}",
                strategy.as_str(),
                thousands(args.requests),
                thousands(args.quantity)
            ),
            report,
            "HTTP + one Redis script",
            ceiling.per_second(),
        )
        .note(format!("outcomes: {}", outcomes.join(", ")));
        rows.push(match (strategy, &refusals) {
            (IssueStrategy::Reserve, Some(refusals)) => {
                let split = |outcome: &str| {
                    report
                        .millis_of(outcome)
                        .map_or_else(String::new, |[p50, p99]| {
                            format!("{outcome}: p50 {p50:.2} ms, p99 {p99:.2} ms")
                        })
                };
                let note = format!(
                    "{}; refusals alone (the same burst for a coupon of {REFUSALS_QUANTITY}) \
                     run at {:.0}% of the ceiling: the rest is what the issuances cost; \
                     by answer, {} and {} (the ceiling's p99 {:.2} ms)",
                    row.note,
                    100.0 * refusals.0.per_second() / refusals.1.per_second(),
                    split("201"),
                    split("409 COUPON_SOLD_OUT"),
                    ceiling.millis_at(0.99),
                );
                // The issue path's tail against the ceiling's: at most 3x.
                let p99 = report.millis_at(0.99);
                let most = 3.0 * ceiling.millis_at(0.99);
                row.target(0.6)
                    .goal(
                        format!("p99 ≤ {most:.1} ms (3× the ceiling's)"),
                        p99 <= most,
                    )
                    .note(note)
            }
            _ => row,
        });
    }
    if let (Some(with), Some((_, (without, _)))) = (
        &with_tokens,
        runs.iter()
            .find(|(strategy, _)| *strategy == IssueStrategy::Reserve),
    ) {
        rows.push(
            Row::new(
                format!(
                    "coupon burst with user tokens, reserve: {} users for {}",
                    thousands(args.requests),
                    thousands(args.quantity)
                ),
                with,
                "the same burst without tokens",
                without.per_second(),
            )
            .target(0.9)
            .note("each request carries its user's HS256 token, verified by the server"),
        );
    }
    if let Some((refusals, ceiling)) = &refusals {
        rows.push(Row::new(
            format!(
                "coupon refusals, reserve: {} users for {REFUSALS_QUANTITY}",
                thousands(args.requests)
            ),
            refusals,
            "HTTP + one Redis script",
            ceiling.per_second(),
        ));
    }
    Ok(rows)
}

/// The ceiling's servers, and the shape of a burst.
struct Ceiling {
    targets: Vec<std::net::SocketAddr>,
    shape: Shape,
}

impl Ceiling {
    fn request(n: usize) -> Call {
        Call::post(ceiling::PATH, format!(r#"{{"user_id":{}}}"#, n + 1))
    }
}

/// One strategy's run on a deployment of its own: the burst, and the
/// ceiling measured right before it.
async fn burst(
    strategy: IssueStrategy,
    quantity: usize,
    args: &Args,
    ceiling: &Ceiling,
    warm_up: Shape,
    tokens: Tokens,
) -> anyhow::Result<(Report, Report)> {
    let shape = ceiling.shape;
    eprintln!(
        "running {} for a coupon of {quantity}...",
        strategy.as_str()
    );
    let deployment = Deployment::start(2, |settings| {
        settings.coupon_issue_strategy = strategy;
        if tokens == Tokens::With {
            settings.jwt_secret = Some(JWT_SECRET.to_owned());
        }
    })
    .await?;
    let users = Arc::new(deployment.users(args.requests.max(args.warm_up)).await?);
    let total = i64::try_from(quantity)?;
    let practice = coupons::create(&deployment.db, coupon("warm-up", total)).await?;
    let coupon = coupons::create(&deployment.db, coupon("burst", total)).await?;

    load::run(
        &deployment.addresses,
        warm_up,
        issue(practice.id, users.clone(), tokens),
    )
    .await?;
    let beside = load::run(&ceiling.targets, shape, Ceiling::request).await?;
    let report = load::run(
        &deployment.addresses,
        shape,
        issue(coupon.id, users, tokens),
    )
    .await?;

    let (issued, rows, holders): (i32, i64, i64) = sqlx::query_as(
        "select issued_quantity,
                (select count(*) from user_coupons where coupon_id = $1),
                (select count(distinct user_id) from user_coupons where coupon_id = $1)
           from coupons where id = $1",
    )
    .bind(coupon.id)
    .fetch_one(&deployment.db)
    .await?;
    let answered = report.count("201");
    ensure!(
        report.sent == args.requests,
        "{}: the time bound ended the run after {} requests",
        strategy.as_str(),
        report.sent
    );
    ensure!(
        usize::try_from(issued)? == quantity
            && usize::try_from(rows)? == quantity
            && usize::try_from(holders)? == quantity
            && answered == quantity,
        "{}: issued_quantity {issued}, rows {rows}, holders {holders}, 201s {answered}; \
         expected {} of each",
        strategy.as_str(),
        quantity
    );
    ensure!(
        answered + report.count("409 COUPON_SOLD_OUT") == report.sent,
        "{}: unexpected answers {:?}",
        strategy.as_str(),
        report.outcomes
    );
    eprintln!(
        "{}: issued_quantity = rows = distinct holders = 201s = {}",
        strategy.as_str(),
        thousands(quantity)
    );
    deployment.stop().await?;
    Ok((report, beside))
}

fn issue(
    coupon_id: i64,
    users: Arc<Vec<i64>>,
    tokens: Tokens,
) -> impl Fn(usize) -> Call + Send + Sync + 'static {
    // Tokens are signed before the run, so the load generator does not
    // spend its time signing.
    let signed: Arc<Vec<String>> = Arc::new(match tokens {
        Tokens::Without => Vec::new(),
        Tokens::With => {
            let signer = commerce::identity::Signer::new(JWT_SECRET);
            users
                .iter()
                .map(|user| {
                    signer
                        .issue(*user, false, Duration::from_secs(3600))
                        .expect("a token")
                })
                .collect()
        }
    });
    move |n| {
        let call = Call::post(
            format!("/api/v1/coupons/{coupon_id}/issue"),
            format!(r#"{{"user_id":{}}}"#, users[n]),
        );
        match signed.get(n) {
            Some(token) => call.with_bearer(token.clone()),
            None => call,
        }
    }
}

fn coupon(name: &str, total_quantity: i64) -> NewCoupon {
    let now = Utc::now();
    NewCoupon {
        name: name.to_owned(),
        discount: Discount {
            kind: DiscountKind::Percent,
            value: 10,
            max_amount: Some(5_000),
        },
        total_quantity,
        min_order_amount: 0,
        valid_from: now - chrono::Duration::minutes(1),
        valid_until: now + chrono::Duration::days(1),
    }
}

/// `12345` as `12,345`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
