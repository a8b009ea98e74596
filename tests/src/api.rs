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
