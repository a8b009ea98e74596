//! Identity: user tokens verified (HS256 secret, JWKS from a file or an
//! address), the ownership table of API.md row by row on two instances,
//! every kind of bad token, and the start-up refusal without keys outside
//! `dev`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use commerce_tests::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

fn keys_dir() -> std::path::PathBuf {
    repository().join("tests/keys")
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).expect("a test key")
}

/// Claims for `user_id`, valid an hour.
fn claims(user_id: i64) -> Value {
    json!({ "sub": user_id.to_string(), "exp": chrono::Utc::now().timestamp() + 3600 })
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("a token")
}

fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
    sign(Header::new(Algorithm::HS256), claims, &key)
}

fn with_kid(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header
}

fn rs256(claims: &Value, kid: &str, pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&key_file(pem)).expect("an RSA key");
    sign(with_kid(Algorithm::RS256, kid), claims, &key)
}

/// A deployment of two instances checking user tokens: the HS256 secret
/// and the test JWKS file.
async fn with_tokens() -> Deployment {
    Deployment::start_with(2, |settings| {
        settings.jwt_secret = Some(JWT_SECRET.to_owned());
        settings.jwt_jwks = Some(keys_dir().join("jwks.json").display().to_string());
    })
    .await
}

fn as_user(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.bearer_auth(token)
}

async fn expect_unauthorized(request: RequestBuilder) {
    let response = request.send().await.expect("the server answers");
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "UNAUTHORIZED", "{body}");
    assert_eq!(challenge, r#"Bearer error="invalid_token""#);
}

/// A user with 100,000 points, made by the admin: the user's id.
async fn shopper(app: &Instance, name: &str) -> i64 {
    let (status, user) = send(
        app.admin(Method::POST, "/api/v1/users")
            .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_i64().expect("an id");
    let (status, _) = send(
        app.admin(
            Method::POST,
            &format!("/api/v1/users/{user_id}/points/charge"),
        )
        .json(&json!({ "amount": 100_000 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    user_id
}

/// API.md's payment row answers `403 FORBIDDEN` for another user's order
/// where a missing one is `404`: a payment attempt tells that the id is an
/// order's, and nothing more. Whatever the order's state, the refusal reads
/// the same, changes nothing, and stores nothing under the Idempotency-Key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_another_users_order_tells_only_that_the_id_exists() {
    let deployment = with_tokens().await;
    let app = deployment.app();
    let kim = shopper(app, "kim").await;
    let lee = shopper(app, "lee").await;
    let (kim_token, lee_token) = (user_token(kim, false), user_token(lee, false));
    let product = app.create_product("Tea", "food", 1_000, 100).await;
    let place = |user: i64, token: String| {
        let request = as_user(
            app.post("/api/v1/orders").json(&json!({
                "user_id": user, "items": [{ "product_id": product.id, "quantity": 1 }],
            })),
            &token,
        );
        async move {
            let (status, order) = send(request).await;
            assert_eq!(status, StatusCode::CREATED, "{order}");
            order["id"].as_i64().expect("an order id")
        }
    };
    let pending = place(kim, kim_token.clone()).await;
    let paid = place(kim, kim_token.clone()).await;
    let cancelled = place(kim, kim_token.clone()).await;
    let pay = |order_id: i64, user: i64, token: &str| {
        as_user(
            app.post("/api/v1/payments")
                .json(&json!({ "order_id": order_id, "user_id": user })),
            token,
        )
    };
    assert_eq!(
        send(pay(paid, kim, &kim_token)).await.0,
        StatusCode::CREATED
    );
    let (status, _) = send(as_user(
        app.post(&format!("/api/v1/orders/{cancelled}/cancel")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);

    let mut refusals = Vec::new();
    for order in [pending, paid, cancelled] {
        let refused = expect_problem(
            pay(order, lee, &lee_token).header("idempotency-key", format!("lee-{order}")),
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        // The same words for every state, the order's id aside.
        let detail = refused["detail"].as_str().unwrap_or_default();
        assert!(
            !["pending", "paid", "cancel", "total"]
                .iter()
                .any(|word| detail.contains(word)),
            "{refused}"
        );
        // Only the order's own id differs (the user's id may be the same number).
        refusals.push(detail.replacen(&format!("order {order} "), "order <order> ", 1));
    }
    assert!(
        refusals.iter().all(|refusal| *refusal == refusals[0]),
        "{refusals:?}"
    );
    let missing = cancelled + 1_000;
    expect_problem(
        pay(missing, lee, &lee_token),
        StatusCode::NOT_FOUND,
        "ORDER_NOT_FOUND",
    )
    .await;

    // Nothing changed, and nothing was stored under lee's keys: the same key
    // pays lee's own order afresh.
    let (_, order) = send(as_user(
        app.get(&format!("/api/v1/orders/{pending}")),
        &kim_token,
    ))
    .await;
    assert_eq!(order["status"], "pending_payment");
    let (_, wallet) = send(app.admin(Method::GET, &format!("/api/v1/users/{lee}/points"))).await;
    assert_eq!(wallet["balance"], 100_000, "{wallet}");
    let own = place(lee, lee_token.clone()).await;
    let response = pay(own, lee, &lee_token)
        .header("idempotency-key", format!("lee-{pending}"))
        .send()
        .await
        .expect("an answer");
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ownership_table_holds_row_by_row_on_two_instances() {
    let deployment = with_tokens().await;
    let (a, b) = (deployment.instance(0), deployment.instance(1));
    let kim = shopper(a, "kim").await;
    let lee = shopper(b, "lee").await;
    let product = send(
        a.admin(Method::POST, "/api/v1/admin/products")
            .json(&json!({
                "name": "Tea", "category": "food", "price": 1000, "stock": 100
            })),
    )
    .await
    .1["id"]
        .as_i64()
        .expect("a product");
    let coupon = a.create_coupon(&open_coupon("welcome", 10)).await;
    let kim_token = user_token(kim, false);
    let lee_token = user_token(lee, false);
    let admin_token = user_token(kim, true);

    // Anyone, no token: the catalogue, a coupon, health, the documents.
    for path in [
        "/api/v1/products".to_owned(),
        format!("/api/v1/products/{product}"),
        "/api/v1/products/popular".to_owned(),
        format!("/api/v1/coupons/{}", coupon.id),
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/openapi.json".to_owned(),
        "/docs/".to_owned(),
    ] {
        let status = a.get(&path).send().await.expect("an answer").status();
        assert_eq!(status, StatusCode::OK, "{path} without a token");
    }

    // Without a token, every user-scoped endpoint is 401.
    let order_body = json!({ "user_id": kim, "items": [{ "product_id": product, "quantity": 1 }] });
    for request in [
        a.get(&format!("/api/v1/users/{kim}/points")),
        a.get(&format!("/api/v1/users/{kim}/points/history")),
        a.post(&format!("/api/v1/users/{kim}/points/charge"))
            .json(&json!({ "amount": 10 })),
        a.post(&format!("/api/v1/coupons/{}/issue", coupon.id))
            .json(&json!({ "user_id": kim })),
        a.get(&format!("/api/v1/users/{kim}/coupons")),
        a.post("/api/v1/quotes").json(&order_body),
        a.post("/api/v1/orders").json(&order_body),
        a.get(&format!("/api/v1/users/{kim}/orders")),
        a.post("/api/v1/users").json(&json!({ "name": "mallory" })),
        a.get("/metrics"),
    ] {
        expect_unauthorized(request).await;
    }

    // The user, on either instance, for themself.
    let (status, _) = send(as_user(
        b.get(&format!("/api/v1/users/{kim}/points")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(as_user(
        a.post(&format!("/api/v1/users/{kim}/points/charge"))
            .json(&json!({ "amount": 500 })),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(as_user(
        b.get(&format!("/api/v1/users/{kim}/points/history")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, issued) = send(as_user(
        a.post(&format!("/api/v1/coupons/{}/issue", coupon.id))
            .json(&json!({ "user_id": kim })),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let (status, _) = send(as_user(
        b.get(&format!("/api/v1/users/{kim}/coupons")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(as_user(
        a.post("/api/v1/quotes").json(&order_body),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, kim_order) = send(as_user(
        b.post("/api/v1/orders").json(&order_body),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{kim_order}");
    let kim_order = kim_order["id"].as_i64().expect("an order id");
    let (status, _) = send(as_user(
        a.get(&format!("/api/v1/users/{kim}/orders")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(as_user(
        b.get(&format!("/api/v1/orders/{kim_order}")),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, paid) = send(as_user(
        a.post("/api/v1/payments")
            .json(&json!({ "order_id": kim_order, "user_id": kim })),
        &kim_token,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");

    // Another user's token acting for kim: 403, except kim's order, which
    // reads and cancels as if it did not exist.
    let lee_order_body =
        json!({ "user_id": kim, "items": [{ "product_id": product, "quantity": 1 }] });
    for request in [
        b.get(&format!("/api/v1/users/{kim}/points")),
        a.get(&format!("/api/v1/users/{kim}/points/history")),
        b.post(&format!("/api/v1/users/{kim}/points/charge"))
            .json(&json!({ "amount": 10 })),
        a.post(&format!("/api/v1/coupons/{}/issue", coupon.id))
            .json(&json!({ "user_id": kim })),
        b.get(&format!("/api/v1/users/{kim}/coupons")),
        a.post("/api/v1/quotes").json(&lee_order_body),
        b.post("/api/v1/orders").json(&lee_order_body),
        a.get(&format!("/api/v1/users/{kim}/orders")),
        b.post("/api/v1/payments")
            .json(&json!({ "order_id": kim_order, "user_id": kim })),
        a.post("/api/v1/users").json(&json!({ "name": "mallory" })),
        b.get("/metrics"),
        a.post("/api/v1/admin/products")
            .json(&json!({ "name": "x", "category": "y", "price": 1, "stock": 1 })),
    ] {
        expect_problem(
            as_user(request, &lee_token),
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
    }
    // Paying kim's order as lee, for lee: not the order's user.
    expect_problem(
        as_user(
            a.post("/api/v1/payments")
                .json(&json!({ "order_id": kim_order, "user_id": lee })),
            &lee_token,
        ),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    for request in [
        b.get(&format!("/api/v1/orders/{kim_order}")),
        a.post(&format!("/api/v1/orders/{kim_order}/cancel")),
    ] {
        expect_problem(
            as_user(request, &lee_token),
            StatusCode::NOT_FOUND,
            "ORDER_NOT_FOUND",
        )
        .await;
    }
    let (_, order) = send(a.admin(Method::GET, &format!("/api/v1/orders/{kim_order}"))).await;
    assert_eq!(order["status"], "paid", "lee's cancel changed nothing");

    // An admin-role user, and the admin token, reach everything for anyone.
    for token in [admin_token.as_str(), ADMIN_TOKEN] {
        let (status, _) = send(as_user(
            b.get(&format!("/api/v1/users/{lee}/points")),
            token,
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = send(as_user(
            a.get(&format!("/api/v1/orders/{kim_order}")),
            token,
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = send(as_user(b.get("/metrics"), token)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = send(as_user(
            a.post("/api/v1/users")
                .json(&json!({ "name": "backoffice" })),
            token,
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, cancelled) = send(as_user(
        b.post(&format!("/api/v1/orders/{kim_order}/cancel")),
        &admin_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_refused_and_good_ones_of_every_algorithm_pass() {
    let deployment = Deployment::start_with(2, |settings| {
        settings.jwt_secret = Some(JWT_SECRET.to_owned());
        settings.jwt_jwks = Some(keys_dir().join("jwks.json").display().to_string());
        settings.jwt_issuer = Some("https://id.example".to_owned());
        settings.jwt_audience = Some("commerce".to_owned());
    })
    .await;
    let app = deployment.instance(1);
    let user = shopper(deployment.app(), "kim").await;
    let path = format!("/api/v1/users/{user}/points");
    let good = || {
        let mut claims = claims(user);
        claims["iss"] = json!("https://id.example");
        claims["aud"] = json!("commerce");
        claims
    };

    // Every algorithm with its key passes.
    let ec = EncodingKey::from_ec_pem(&key_file("ec.pem")).expect("an EC key");
    let ed = EncodingKey::from_ed_pem(&key_file("ed25519.pem")).expect("an Ed25519 key");
    for token in [
        hs256(&good(), JWT_SECRET),
        rs256(&good(), "rsa-1", "rsa.pem"),
        sign(with_kid(Algorithm::ES256, "ec-1"), &good(), &ec),
        sign(with_kid(Algorithm::EdDSA, "ed-1"), &good(), &ed),
    ] {
        let (status, body) = send(as_user(app.get(&path), &token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // An `aud` array that holds the audience passes (RFC 7519).
    let several_audiences = {
        let mut claims = good();
        claims["aud"] = json!(["billing", "commerce"]);
        claims
    };
    let (status, body) = send(as_user(
        app.get(&path),
        &hs256(&several_audiences, JWT_SECRET),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let expired = {
        let mut claims = good();
        claims["exp"] = json!(chrono::Utc::now().timestamp() - 120);
        claims
    };
    let not_yet = {
        let mut claims = good();
        claims["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
        claims
    };
    let no_exp = {
        let mut claims = good();
        claims.as_object_mut().expect("an object").remove("exp");
        claims
    };
    let wrong_issuer = {
        let mut claims = good();
        claims["iss"] = json!("https://evil.example");
        claims
    };
    let wrong_audience = {
        let mut claims = good();
        claims["aud"] = json!("another-service");
        claims
    };
    let without = |claim: &str| {
        let mut claims = good();
        claims.as_object_mut().expect("an object").remove(claim);
        claims
    };
    let other_audiences = {
        let mut claims = good();
        claims["aud"] = json!(["billing", "search"]);
        claims
    };
    // An admin's token is held to the same claims.
    let admin_without_issuer = {
        let mut claims = without("iss");
        claims["roles"] = json!(["admin"]);
        claims
    };
    let not_a_user = {
        let mut claims = good();
        claims["sub"] = json!("kim");
        claims
    };
    // `alg: none`, unsigned.
    let b64 = |value: &Value| base64_url(&serde_json::to_vec(value).expect("json"));
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&good())
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key's PEM.
    let public_pem = String::from_utf8(key_file("rsa.pub.pem")).expect("a PEM");
    let confused = {
        let key = EncodingKey::from_secret(public_pem.as_bytes()).expect("an HMAC key");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        sign(header, &good(), &key)
    };
    // An RS256 token whose kid names the EC key.
    let wrong_key = rs256(&good(), "ec-1", "rsa.pem");
    for (what, token) in [
        ("expired", hs256(&expired, JWT_SECRET)),
        ("not yet valid", hs256(&not_yet, JWT_SECRET)),
        ("without exp", hs256(&no_exp, JWT_SECRET)),
        (
            "wrong signature",
            hs256(&good(), "another-secret-of-at-least-32-bytes!!"),
        ),
        ("wrong issuer", hs256(&wrong_issuer, JWT_SECRET)),
        ("wrong audience", hs256(&wrong_audience, JWT_SECRET)),
        ("without iss", hs256(&without("iss"), JWT_SECRET)),
        ("without aud", hs256(&without("aud"), JWT_SECRET)),
        (
            "without iss, RS256",
            rs256(&without("iss"), "rsa-1", "rsa.pem"),
        ),
        (
            "an aud array without the audience",
            hs256(&other_audiences, JWT_SECRET),
        ),
        ("sub not a user id", hs256(&not_a_user, JWT_SECRET)),
        ("alg none", none),
        ("algorithm confusion", confused),
        ("a kid of another algorithm", wrong_key),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let response = as_user(app.get(&path), &token)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    let admin = hs256(&admin_without_issuer, JWT_SECRET);
    expect_unauthorized(as_user(app.get("/api/v1/admin/policies"), &admin)).await;
}

/// base64url without padding, as JWTs encode their parts.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWKS served over HTTP by the test, whose keys it can rotate; it counts
/// how often it is fetched.
struct IdentityProvider {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl IdentityProvider {
    async fn start(file: &str) -> Self {
        let document = Arc::new(Mutex::new(
            String::from_utf8(key_file(file)).expect("a JWKS"),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (document.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let served = served.clone();
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().expect("the document").clone();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!(
            "http://{}/jwks.json",
            listener.local_addr().expect("an address")
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            document,
            fetches,
        }
    }

    fn rotate(&self, file: &str) {
        *self.document.lock().expect("the document") =
            String::from_utf8(key_file(file)).expect("a JWKS");
    }

    fn serve(&self, document: &Value) {
        *self.document.lock().expect("the document") = document.to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_cooldown() {
    let provider = IdentityProvider::start("jwks.json").await;
    let url = provider.url.clone();
    let deployment = Deployment::start_with(1, move |settings| {
        settings.jwt_jwks = Some(url.clone());
        settings.jwt_jwks_refetch_cooldown_ms = 2_000;
    })
    .await;
    let app = deployment.app();
    let user = shopper(app, "kim").await;
    let path = format!("/api/v1/users/{user}/points");
    assert_eq!(provider.fetches(), 1, "fetched once at start");
    let (status, _) = send(as_user(
        app.get(&path),
        &rs256(&claims(user), "rsa-1", "rsa.pem"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);

    // Forged kids do not hammer the provider: the JWKS was fetched moments
    // ago, so none of these fetches it again.
    for n in 0..20 {
        let token = rs256(&claims(user), &format!("forged-{n}"), "rsa.pem");
        expect_unauthorized(as_user(app.get(&path), &token)).await;
    }
    // The provider rotates in a new key; a token signed with it is refused
    // until the next fetch is allowed, then fetches once and passes.
    provider.rotate("jwks-rotated.json");
    let rotated = rs256(&claims(user), "rsa-2", "rsa-rotated.pem");
    expect_unauthorized(as_user(app.get(&path), &rotated)).await;
    assert_eq!(provider.fetches(), 1, "{} fetches", provider.fetches());
    // Once the cooldown has passed, the first token with the new kid fetches
    // the JWKS once and passes; until then each is refused without a fetch.
    eventually(
        Duration::from_secs(3),
        "the rotated key verifies after the cooldown",
        || async {
            let (status, body) = send(as_user(app.get(&path), &rotated)).await;
            if status == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;
    assert_eq!(provider.fetches(), 2);
}

/// The JWKS of `file` with `change` made to its key list.
fn jwks_with(file: &str, change: impl FnOnce(&mut Vec<Value>)) -> Value {
    let mut document: Value = serde_json::from_slice(&key_file(file)).expect("a JWKS");
    let keys = document["keys"].as_array_mut().expect("a key list");
    change(keys);
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_or_replaced_in_the_jwks_stops_its_tokens_at_the_next_refresh() {
    let provider = IdentityProvider::start("jwks-rotated.json").await;
    let url = provider.url.clone();
    let deployment = Deployment::start_with(1, move |settings| {
        settings.jwt_jwks = Some(url.clone());
        settings.jwt_jwks_refresh_secs = 1;
    })
    .await;
    let app = deployment.app();
    let user = shopper(app, "kim").await;
    let path = format!("/api/v1/users/{user}/points");
    let first = rs256(&claims(user), "rsa-1", "rsa.pem");
    let second = rs256(&claims(user), "rsa-2", "rsa-rotated.pem");
    for token in [&first, &second] {
        let (status, body) = send(as_user(app.get(&path), token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // rsa-1 leaves the JWKS: its token, verified and cached, stops.
    provider.serve(&jwks_with("jwks-rotated.json", |keys| {
        keys.retain(|key| key["kid"] != "rsa-1");
    }));
    let token = first.clone();
    eventually(Duration::from_secs(3), "rsa-1's token refused", || {
        let request = as_user(app.get(&path), &token);
        async move {
            match send(request).await {
                (StatusCode::UNAUTHORIZED, _) => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        }
    })
    .await;
    let (status, body) = send(as_user(app.get(&path), &second)).await;
    assert_eq!(status, StatusCode::OK, "rsa-2 stays: {body}");
    // rsa-2 keeps its kid but gets other material (rsa-1's key): its
    // cached token stops too; one signed with the new material passes.
    provider.serve(&jwks_with("jwks-rotated.json", |keys| {
        let old = keys
            .iter()
            .find(|key| key["kid"] == "rsa-1")
            .cloned()
            .expect("rsa-1");
        keys.retain(|key| key["kid"] != "rsa-1" && key["kid"] != "rsa-2");
        let mut replaced = old;
        replaced["kid"] = json!("rsa-2");
        keys.push(replaced);
    }));
    let token = second.clone();
    eventually(Duration::from_secs(3), "rsa-2's old token refused", || {
        let request = as_user(app.get(&path), &token);
        async move {
            match send(request).await {
                (StatusCode::UNAUTHORIZED, _) => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        }
    })
    .await;
    let renewed = rs256(&claims(user), "rsa-2", "rsa.pem");
    let (status, body) = send(as_user(app.get(&path), &renewed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_dev_the_server_refuses_to_start_without_user_keys() {
    let mut settings = commerce::Settings::defaults();
    settings.listen = "127.0.0.1:0".parse().expect("an address");
    settings.environment = "staging".to_owned();
    settings.admin_token = Some(ADMIN_TOKEN.to_owned());
    let err = commerce::Application::build(settings.clone())
        .await
        .err()
        .expect("no keys outside dev");
    assert!(
        format!("{err:#}").contains("JWT_SECRET or JWT_JWKS"),
        "{err:#}"
    );

    settings.jwt_secret = Some("too-short".to_owned());
    let err = commerce::Application::build(settings)
        .await
        .err()
        .expect("a short secret");
    assert!(format!("{err:#}").contains("at least 32 bytes"), "{err:#}");
}
