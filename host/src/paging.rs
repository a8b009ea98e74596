//! Paging of list endpoints: `page` (0-based) and `size` (1-100, default 20).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, Result};

pub const DEFAULT_SIZE: u32 = 20;
pub const MAX_SIZE: u32 = 100;
/// Deepest page number accepted.
pub const MAX_PAGE: u32 = 100_000;
/// Most rows skipped to reach a page (`page` x `size`): a deeper offset makes
/// the database read and drop every row before it, so no public query may
/// ask for one (the statement timeout would be its only bound).
pub const MAX_OFFSET: u64 = 10_000;

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
    pub fn validate(self) -> Result<PageRequest> {
        let page = self.page.unwrap_or(0);
        let size = self.size.unwrap_or(DEFAULT_SIZE);
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(Error::invalid(format!("size must be 1-{MAX_SIZE}")));
        }
        if page > MAX_PAGE {
            return Err(Error::invalid(format!("page must be 0-{MAX_PAGE}")));
        }
        if u64::from(page) * u64::from(size) > MAX_OFFSET {
            return Err(Error::invalid(format!(
                "page x size must be at most {MAX_OFFSET}; narrow the query instead"
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page: Option<u32>, size: Option<u32>) -> PageQuery {
        PageQuery { page, size }
    }

    #[test]
    fn defaults_to_the_first_page_of_twenty() {
        let page = query(None, None).validate().expect("valid");
        assert_eq!((page.page, page.size, page.offset()), (0, 20, 0));
    }

    #[test]
    fn size_is_bounded_and_offset_follows_page() {
        assert!(query(None, Some(0)).validate().is_err());
        assert!(query(None, Some(101)).validate().is_err());
        assert!(query(Some(MAX_PAGE + 1), None).validate().is_err());
        assert_eq!(
            query(Some(3), Some(100))
                .validate()
                .expect("valid")
                .offset(),
            300
        );
    }
}
