//! Typed helpers for the API's resources.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Instance, expect, send};

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Balance {
    pub user_id: i64,
    pub balance: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<i64>,
    pub created_at: String,
}

impl HistoryEntry {
    /// What this entry did to the balance.
    pub fn signed_amount(&self) -> i64 {
        match self.kind.as_str() {
            "charge" | "refund" => self.amount,
            "use" => -self.amount,
            other => panic!("unknown history kind {other}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub size: u32,
    pub total: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub price: i64,
    pub stock: i64,
    pub created_at: String,
}

impl Instance {
    pub async fn create_user(&self, name: &str) -> User {
        expect(
            self.post("/api/v1/users").json(&json!({ "name": name })),
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn charge(&self, user_id: i64, amount: i64) -> (StatusCode, Value) {
        send(self.charge_request(user_id, amount)).await
    }

    pub fn charge_request(&self, user_id: i64, amount: i64) -> reqwest::RequestBuilder {
        self.post(&format!("/api/v1/users/{user_id}/points/charge"))
            .json(&json!({ "amount": amount }))
    }

    pub async fn balance(&self, user_id: i64) -> i64 {
        let balance: Balance = expect(
            self.get(&format!("/api/v1/users/{user_id}/points")),
            StatusCode::OK,
        )
        .await;
        balance.balance
    }

    /// The whole history, newest first, read page by page.
    pub async fn history(&self, user_id: i64) -> Vec<HistoryEntry> {
        let mut entries = Vec::new();
        for page in 0.. {
            let got: Page<HistoryEntry> = expect(
                self.get(&format!(
                    "/api/v1/users/{user_id}/points/history?page={page}&size=100"
                )),
                StatusCode::OK,
            )
            .await;
            let done = got.items.len() < 100;
            entries.extend(got.items);
            if done {
                break;
            }
        }
        entries
    }

    pub async fn create_product(
        &self,
        name: &str,
        category: &str,
        price: i64,
        stock: i64,
    ) -> Product {
        expect(
            self.admin(Method::POST, "/api/v1/admin/products")
                .json(&json!({
                    "name": name, "category": category, "price": price, "stock": stock
                })),
            StatusCode::CREATED,
        )
        .await
    }

    /// `GET /api/v1/products?<query>`, expecting a page.
    pub async fn products(&self, query: &str) -> Page<Product> {
        expect(
            self.get(&format!("/api/v1/products?{query}")),
            StatusCode::OK,
        )
        .await
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Coupon {
    pub id: i64,
    pub name: String,
    pub discount: Value,
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub remaining: i64,
    pub min_order_amount: i64,
    pub valid_from: String,
    pub valid_until: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IssuedCoupon {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub status: String,
    pub issued_at: String,
}

/// One of a user's coupons, as their list shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct HeldCoupon {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub name: String,
    pub discount: Value,
    pub status: String,
    pub issued_at: String,
    pub used_at: Option<String>,
    pub valid_until: String,
}

/// A coupon body for `POST /api/v1/admin/coupons`: 10% off up to 5,000 won,
/// `total_quantity` of them, valid from 2020 to 2100.
pub fn open_coupon(name: &str, total_quantity: i64) -> Value {
    json!({
        "name": name,
        "discount": { "kind": "percent", "value": 10, "max_amount": 5000 },
        "total_quantity": total_quantity,
        "min_order_amount": 0,
        "valid_from": "2020-01-01T00:00:00Z",
        "valid_until": "2100-01-01T00:00:00Z",
    })
}

impl Instance {
    pub async fn create_coupon(&self, body: &Value) -> Coupon {
        expect(
            self.admin(Method::POST, "/api/v1/admin/coupons").json(body),
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn coupon(&self, coupon_id: i64) -> Coupon {
        expect(
            self.get(&format!("/api/v1/coupons/{coupon_id}")),
            StatusCode::OK,
        )
        .await
    }

    pub fn issue_request(&self, coupon_id: i64, user_id: i64) -> reqwest::RequestBuilder {
        self.post(&format!("/api/v1/coupons/{coupon_id}/issue"))
            .json(&json!({ "user_id": user_id }))
    }

    pub async fn issue(&self, coupon_id: i64, user_id: i64) -> (StatusCode, Value) {
        send(self.issue_request(coupon_id, user_id)).await
    }

    /// `GET /api/v1/users/{user_id}/coupons?<query>`, expecting a page.
    pub async fn user_coupons(&self, user_id: i64, query: &str) -> Page<HeldCoupon> {
        expect(
            self.get(&format!("/api/v1/users/{user_id}/coupons?{query}")),
            StatusCode::OK,
        )
        .await
    }
}
