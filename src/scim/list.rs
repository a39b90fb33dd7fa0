//! Paging parameters and the ListResponse (RFC 7644 §3.4.2.4).

use serde_json::{json, Value};

use super::{ScimError, LIST_URN};

/// Default page size when the client gives no `count` (Okta pages by 100).
pub const DEFAULT_COUNT: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub start_index: u64,
    pub count: u64,
}

impl Page {
    /// Parses `startIndex` and `count`; values below 1 for startIndex mean 1, negative counts
    /// mean 0 (RFC 7644 §3.4.2.4), `count` is clamped to `max_count`.
    pub fn parse(
        start_index: Option<&str>,
        count: Option<&str>,
        max_count: u64,
    ) -> Result<Page, ScimError> {
        let num = |name: &str, v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid_value(format!("\"{name}\" must be an integer")))
        };
        let start = match start_index {
            Some(v) => num("startIndex", v)?.max(1) as u64,
            None => 1,
        };
        let count = match count {
            Some(v) => (num("count", v)?.max(0) as u64).min(max_count),
            None => DEFAULT_COUNT.min(max_count),
        };
        Ok(Page {
            start_index: start,
            count,
        })
    }
}

pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_rules() {
        assert_eq!(
            Page::parse(None, None, 1000).unwrap(),
            Page {
                start_index: 1,
                count: 100
            }
        );
        assert_eq!(
            Page::parse(Some("0"), Some("-5"), 1000).unwrap(),
            Page {
                start_index: 1,
                count: 0
            }
        );
        assert_eq!(
            Page::parse(Some("7"), Some("5000"), 1000).unwrap(),
            Page {
                start_index: 7,
                count: 1000
            }
        );
        assert!(Page::parse(Some("x"), None, 10).is_err());
        let v = list_response(0, 1, vec![]);
        assert_eq!(v["itemsPerPage"], 0);
        assert_eq!(v["Resources"], json!([]));
    }
}
