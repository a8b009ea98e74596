use commerce_tests::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_report_the_dependencies() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (status, body) = send(app.get("/healthz")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = send(app.get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["redis"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_status() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    send(app.get("/api/v1/products/77")).await;
    let response = app.get("/metrics").send().await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/api/v1/products/{product_id}",status="404"}"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_endpoint_and_the_docs_render() {
    let deployment = Deployment::start().await;
    let app = deployment.app();
    let (status, doc) = send(app.get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/users/{user_id}/points", "get"),
        ("/api/v1/users/{user_id}/points/charge", "post"),
        ("/api/v1/users/{user_id}/points/history", "get"),
        ("/api/v1/products", "get"),
        ("/api/v1/products/{product_id}", "get"),
        ("/api/v1/admin/products", "post"),
        ("/api/v1/admin/products/{product_id}", "patch"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is undocumented"
        );
    }
    // Swagger UI is served from the binary: no request leaves the machine.
    let page = app.get("/docs/").send().await.expect("an answer");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page loads remote assets"
    );
    let (status, _): (StatusCode, Value) = send(app.get("/docs/swagger-ui-bundle.js")).await;
    assert_eq!(status, StatusCode::OK);
}
