use commerce_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A small catalogue with distinct prices, names and stock.
async fn catalogue(app: &Instance) -> Vec<Product> {
    let mut products = Vec::new();
    for (name, category, price, stock) in [
        ("Green Tea", "food", 5_000, 10),
        ("Kimchi 1kg", "food", 12_000, 0),
        ("Rust Book", "books", 30_000, 3),
        ("rusty nail", "home", 100, 500),
        ("Desk Lamp", "home", 45_000, 0),
        ("100% Cotton Shirt", "fashion", 20_000, 7),
    ] {
        products.push(app.create_product(name, category, price, stock).await);
    }
    products
}

fn names(page: &Page<Product>) -> Vec<&str> {
    page.items.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_newest_first_by_default() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let created = catalogue(app).await;
    let page = app.products("").await;
    assert_eq!(page.total, 6);
    assert_eq!((page.page, page.size), (0, 20));
    let ids: Vec<i64> = page.items.iter().map(|p| p.id).collect();
    let mut newest_first: Vec<i64> = created.iter().map(|p| p.id).collect();
    newest_first.reverse();
    assert_eq!(ids, newest_first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_narrows_the_catalogue() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    catalogue(app).await;

    let rust = app.products("name=RUST&sort=name").await;
    assert_eq!(names(&rust), ["Rust Book", "rusty nail"]);
    // `%` is a literal character, not a wildcard.
    assert_eq!(
        names(&app.products("name=100%25").await),
        ["100% Cotton Shirt"]
    );
    assert_eq!(app.products("name=0%25C").await.total, 0);

    let food = app.products("category=food&sort=price_asc").await;
    assert_eq!(names(&food), ["Green Tea", "Kimchi 1kg"]);

    let mid = app
        .products("min_price=5000&max_price=20000&sort=price_asc")
        .await;
    assert_eq!(
        names(&mid),
        ["Green Tea", "Kimchi 1kg", "100% Cotton Shirt"]
    );

    let in_stock = app.products("in_stock=true&sort=name").await;
    assert_eq!(
        names(&in_stock),
        ["100% Cotton Shirt", "Green Tea", "Rust Book", "rusty nail"]
    );
    let sold_out = app.products("in_stock=false&sort=name").await;
    assert_eq!(names(&sold_out), ["Desk Lamp", "Kimchi 1kg"]);

    let combined = app
        .products("category=home&in_stock=true&max_price=1000")
        .await;
    assert_eq!(names(&combined), ["rusty nail"]);
    assert_eq!(combined.total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_order_by_price_and_name() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    catalogue(app).await;
    let asc: Vec<i64> = app
        .products("sort=price_asc")
        .await
        .items
        .iter()
        .map(|p| p.price)
        .collect();
    assert_eq!(asc, [100, 5_000, 12_000, 20_000, 30_000, 45_000]);
    let desc: Vec<i64> = app
        .products("sort=price_desc")
        .await
        .items
        .iter()
        .map(|p| p.price)
        .collect();
    assert_eq!(desc, [45_000, 30_000, 20_000, 12_000, 5_000, 100]);
    let by_name = app.products("sort=name").await;
    assert_eq!(
        names(&by_name),
        [
            "100% Cotton Shirt",
            "Desk Lamp",
            "Green Tea",
            "Kimchi 1kg",
            "Rust Book",
            "rusty nail"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_the_catalogue_without_overlap() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    catalogue(app).await;
    let mut seen = Vec::new();
    for page in 0..3 {
        let got = app
            .products(&format!("size=2&page={page}&sort=price_asc"))
            .await;
        assert_eq!(got.total, 6, "page {page}");
        assert_eq!((got.page, got.size), (page, 2));
        seen.extend(got.items.into_iter().map(|p| p.price));
    }
    assert_eq!(seen, [100, 5_000, 12_000, 20_000, 30_000, 45_000]);
    let past_the_end = app.products("size=2&page=3").await;
    assert!(past_the_end.items.is_empty());
    assert_eq!(past_the_end.total, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_is_read_created_and_patched() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let created = app.create_product("Ceramic Mug", "home", 9_000, 12).await;
    let read: Product = expect(
        app.get(&format!("/api/v1/products/{}", created.id)),
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, created);

    let patched: Product = expect(
        app.admin(
            Method::PATCH,
            &format!("/api/v1/admin/products/{}", created.id),
        )
        .json(&json!({ "price": 7_500, "stock": 0 })),
        StatusCode::OK,
    )
    .await;
    assert_eq!((patched.price, patched.stock), (7_500, 0));
    assert_eq!(
        (patched.name.as_str(), patched.category.as_str()),
        ("Ceramic Mug", "home")
    );

    expect_problem(
        app.get("/api/v1/products/424242"),
        StatusCode::NOT_FOUND,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    expect_problem(
        app.admin(Method::PATCH, "/api/v1/admin/products/424242")
            .json(&json!({ "price": 1 })),
        StatusCode::NOT_FOUND,
        "PRODUCT_NOT_FOUND",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_bearer_token() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let body = json!({ "name": "x", "category": "y", "price": 1, "stock": 1 });
    expect_problem(
        app.post("/api/v1/admin/products").json(&body),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    expect_problem(
        app.post("/api/v1/admin/products")
            .bearer_auth("wrong-token")
            .json(&body),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    expect_problem(
        app.patch("/api/v1/admin/products/1")
            .json(&json!({ "price": 1 })),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    assert_eq!(app.products("").await.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_closed_without_a_configured_token() {
    let deployment = Deployment::start_with(1, |settings| {
        settings.environment = "staging".to_owned();
        settings.admin_token = None;
    })
    .await;
    expect_problem(
        deployment
            .app()
            .admin(Method::POST, "/api/v1/admin/products")
            .json(&json!({ "name": "x", "category": "y", "price": 1, "stock": 1 })),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
}

/// The price the catalogue list shows for `product`, through `app`.
async fn listed_price(app: &Instance, product: i64) -> i64 {
    let page = app.products("sort=newest&size=100").await;
    page.items
        .iter()
        .find(|item| item.id == product)
        .map(|item| item.price)
        .expect("the product is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_change_shows_at_once_here_and_within_a_second_everywhere() {
    let deployment = Deployment::start_many(2).await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let product = a.create_product("Kettle", "kitchen", 18_000, 5).await;
    // Both instances have the page cached.
    assert_eq!(listed_price(a, product.id).await, 18_000);
    assert_eq!(listed_price(b, product.id).await, 18_000);
    let in_stock = b.products("in_stock=true&size=100").await;
    assert!(in_stock.items.iter().any(|item| item.id == product.id));

    let (status, body) = send(
        a.admin(
            reqwest::Method::PATCH,
            &format!("/api/v1/admin/products/{}", product.id),
        )
        .json(&serde_json::json!({ "price": 17_000, "stock": 0 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        listed_price(a, product.id).await,
        17_000,
        "at once, through the writer"
    );
    let started = std::time::Instant::now();
    loop {
        let price = listed_price(b, product.id).await;
        let in_stock = b.products("in_stock=true&size=100").await;
        if price == 17_000 && !in_stock.items.iter().any(|item| item.id == product.id) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the other instance still shows {price} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
