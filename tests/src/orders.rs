//! Typed helpers for orders and payments.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::{Instance, send};

impl Instance {
    /// `POST /api/v1/orders` with `(product_id, quantity)` lines.
    pub fn order_request(
        &self,
        user_id: i64,
        lines: &[(i64, i64)],
        user_coupon_id: Option<i64>,
    ) -> RequestBuilder {
        let items: Vec<Value> = lines
            .iter()
            .map(|(product_id, quantity)| json!({ "product_id": product_id, "quantity": quantity }))
            .collect();
        self.post("/api/v1/orders").json(&json!({
            "user_id": user_id,
            "items": items,
            "user_coupon_id": user_coupon_id,
        }))
    }

    pub async fn place_order(&self, user_id: i64, lines: &[(i64, i64)]) -> (StatusCode, Value) {
        send(self.order_request(user_id, lines, None)).await
    }

    pub fn pay_request(&self, order_id: i64, user_id: i64) -> RequestBuilder {
        self.post("/api/v1/payments")
            .json(&json!({ "order_id": order_id, "user_id": user_id }))
    }

    pub async fn pay(&self, order_id: i64, user_id: i64) -> (StatusCode, Value) {
        send(self.pay_request(order_id, user_id)).await
    }

    pub async fn cancel(&self, order_id: i64) -> (StatusCode, Value) {
        send(self.post(&format!("/api/v1/orders/{order_id}/cancel"))).await
    }

    pub async fn order(&self, order_id: i64) -> Value {
        let (status, body) = send(self.get(&format!("/api/v1/orders/{order_id}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn stock(&self, product_id: i64) -> i64 {
        let (status, body) = send(self.get(&format!("/api/v1/products/{product_id}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["stock"].as_i64().expect("a stock")
    }
}
