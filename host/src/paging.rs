//! Paging of list endpoints: `page` (0-based) and `size` (1-100, default 20).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};

pub const DEFAULT_SIZE: u32 = 20;
pub const MAX_SIZE: u32 = 100;
/// Deepest page served; deeper offsets cost the database more than they are worth.
pub const MAX_PAGE: u32 = 100_000;

/// The paging query parameters, validated by [`PageQuery::validate`].
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 0-based page number.
    #[param(minimum = 0, maximum = 100000)]
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<u32>,
}

impl PageQuery {
    pub fn validate(self) -> ApiResult<PageRequest> {
        let page = self.page.unwrap_or(0);
        let size = self.size.unwrap_or(DEFAULT_SIZE);
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(ApiError::invalid(format!("size must be 1-{MAX_SIZE}")));
        }
        if page > MAX_PAGE {
            return Err(ApiError::invalid(format!("page must be 0-{MAX_PAGE}")));
        }
        Ok(PageRequest { page, size })
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub fn limit(self) -> i64 {
        i64::from(self.size)
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page) * i64::from(self.size)
    }

    pub fn with<T>(self, items: Vec<T>, total: i64) -> Page<T> {
        Page {
            items,
            page: self.page,
            size: self.size,
            total,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub size: u32,
    pub total: i64,
}
