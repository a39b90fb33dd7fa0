//! List and search requests (RFC 7644 §3.4.2 query parameters, §3.4.3 `POST /.search`
//! bodies): filter, sort, paging, projection; and the ListResponse.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::filter::{self, AttrPath, Filter};
use super::path::Resolved;
use super::projection::Projection;
use super::schema::{AttrType, ResourceSchema};
use super::{ScimError, ScimType, LIST_URN, SEARCH_URN};

/// Default page size when the client gives no `count` (Okta pages by 100).
pub const DEFAULT_COUNT: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub start_index: u64,
    pub count: u64,
}

/// Parses an integer parameter; out-of-range integers saturate (a start past any end is
/// simply past the end), anything else is a 400 `invalidValue`.
fn parse_int(name: &str, v: &str) -> Result<i64, ScimError> {
    use std::num::IntErrorKind;
    match v.trim().parse::<i64>() {
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Ok(i64::MAX),
        Err(e) if *e.kind() == IntErrorKind::NegOverflow => Ok(i64::MIN),
        Err(_) => Err(ScimError::invalid_value(format!(
            "\"{name}\" must be an integer"
        ))),
    }
}

impl Page {
    /// Applies RFC 7644 §3.4.2.4: a `startIndex` below 1 means 1, a negative `count` means 0,
    /// `count` is clamped to `max_count` and defaults to [`DEFAULT_COUNT`] (also clamped).
    pub fn new(start_index: Option<i64>, count: Option<i64>, max_count: u64) -> Page {
        Page {
            start_index: start_index.map_or(1, |s| s.max(1) as u64),
            count: count
                .map_or(DEFAULT_COUNT, |c| c.max(0) as u64)
                .min(max_count),
        }
    }

    /// Parses `startIndex` and `count` query parameters; see [`Page::new`].
    pub fn parse(
        start_index: Option<&str>,
        count: Option<&str>,
        max_count: u64,
    ) -> Result<Page, ScimError> {
        let start = start_index
            .map(|v| parse_int("startIndex", v))
            .transpose()?;
        let count = count.map(|v| parse_int("count", v)).transpose()?;
        Ok(Page::new(start, count, max_count))
    }
}

/// A value a list is ordered by, as the store compares it (see [`Sort::resolve`]): text
/// (folded when the attribute is not `caseExact`), a number, a boolean. The short names are
/// its form inside a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SortValue {
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "i")]
    Integer(i64),
    #[serde(rename = "r")]
    Real(f64),
    #[serde(rename = "b")]
    Boolean(bool),
}

/// One resource's place in a list's order: its sort value (`None` when it has none, or the
/// list is not sorted) and the store's tie-breaker, unique and in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub value: Option<SortValue>,
    pub tie: i64,
}

/// Where a keyset page starts: next to `position`, or at it too when `inclusive`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub position: Position,
    pub inclusive: bool,
}

/// A keyset page (RFC 9865 cursors): up to `limit` resources after `from` in list order,
/// or with `backward` before it, nearest first; from the start (or the end) without `from`.
/// It never skips or repeats a resource that stays, however many are written meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct Seek {
    pub from: Option<Bound>,
    pub backward: bool,
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

impl SortOrder {
    /// `ascending` or `descending`, case-insensitively; anything else is `invalidValue`.
    pub fn parse(s: &str) -> Result<SortOrder, ScimError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ascending") {
            Ok(SortOrder::Ascending)
        } else if s.eq_ignore_ascii_case("descending") {
            Ok(SortOrder::Descending)
        } else {
            Err(ScimError::invalid_value(format!(
                "\"sortOrder\" must be \"ascending\" or \"descending\", not \"{s}\""
            )))
        }
    }
}

/// A requested sort: the attribute as written and its order (RFC 7644 §3.4.2.3; the order
/// defaults to ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub by: String,
    pub order: SortOrder,
}

impl Sort {
    /// `sortOrder` is validated even without `sortBy`, where it has nothing to order. A
    /// `sortBy` that is not an attribute path is 400 `invalidValue`.
    fn parse(by: Option<&str>, order: Option<&str>) -> Result<Option<Sort>, ScimError> {
        let order = order
            .filter(|o| !o.trim().is_empty())
            .map(SortOrder::parse)
            .transpose()?;
        let Some(by) = by.map(str::trim).filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let sort = Sort {
            by: by.to_string(),
            order: order.unwrap_or(SortOrder::Ascending),
        };
        sort.path()?;
        Ok(Some(sort))
    }

    /// `sortBy` as an attribute path; 400 `invalidValue` if it is not one.
    pub fn path(&self) -> Result<AttrPath, ScimError> {
        filter::parse_attr_path(&self.by, ScimType::InvalidValue).map_err(|e| {
            ScimError::invalid_value(format!("\"sortBy\" is not an attribute path: {}", e.detail))
        })
    }

    /// What `sortBy` orders `kind` by (RFC 7644 §3.4.2.3), or `None` when `kind` has no such
    /// sortable attribute. A complex attribute without sub-attribute stands for its `value`
    /// (`emails` is `emails.value`, `manager` is `manager.value`); one without `value`
    /// (`name`, `meta`) cannot be sorted by. For a multi-valued attribute the store uses the
    /// element with `"primary": true`, else the first element.
    pub fn resolve<'r>(&self, rs: &'r ResourceSchema) -> Option<Resolved<'r>> {
        let mut r = filter::resolve(rs, &self.path().ok()?)?;
        if r.sub.is_none() && r.attr.ty == AttrType::Complex {
            r.sub = Some(r.attr.sub_attr("value")?);
        }
        Some(r)
    }

    pub fn descending(&self) -> bool {
        self.order == SortOrder::Descending
    }
}

/// One list or search request, the same whether it came as GET query parameters or as a
/// `POST /.search` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// Applied by the store (`Store::list`); without it results come in creation order.
    pub sort: Option<Sort>,
    pub page: Page,
    pub projection: Projection,
}

/// The members of a SearchRequest (RFC 7644 §3.4.3), matched case-insensitively.
const SEARCH_MEMBERS: [&str; 8] = [
    "schemas",
    "attributes",
    "excludedAttributes",
    "filter",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
];

fn parse_filter(f: &str) -> Result<Option<Filter>, ScimError> {
    if f.trim().is_empty() {
        return Ok(None);
    }
    filter::parse(f).map(Some)
}

/// A JSON integer (or a string holding one) from a search body; see [`parse_int`].
fn int_member(name: &str, v: &Value) -> Result<i64, ScimError> {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ok(i),
            (None, Some(_)) => Ok(i64::MAX),
            _ => Err(ScimError::invalid_value(format!(
                "\"{name}\" must be an integer"
            ))),
        },
        Value::String(s) => parse_int(name, s),
        _ => Err(ScimError::invalid_value(format!(
            "\"{name}\" must be an integer"
        ))),
    }
}

fn str_member<'a>(name: &str, v: &'a Value) -> Result<&'a str, ScimError> {
    v.as_str()
        .ok_or_else(|| ScimError::invalid_value(format!("\"{name}\" must be a string")))
}

/// `attributes` / `excludedAttributes`: an array of names (RFC 7644 §3.4.3); a single
/// comma-separated string is accepted too, as in the query parameter.
fn names_member<'a>(name: &str, v: &'a Value) -> Result<Vec<&'a str>, ScimError> {
    let wrong = || ScimError::invalid_value(format!("\"{name}\" must be an array of strings"));
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(|i| i.as_str().ok_or_else(wrong)).collect(),
        _ => Err(wrong()),
    }
}

fn check_search_schemas(v: &Value) -> Result<(), ScimError> {
    let wrong = || {
        ScimError::invalid_value(format!(
            "\"schemas\" must be [\"{SEARCH_URN}\"] for a search request"
        ))
    };
    let list = v.as_array().ok_or_else(wrong)?;
    let ok = !list.is_empty()
        && list.iter().all(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_URN))
        });
    if ok {
        Ok(())
    } else {
        Err(wrong())
    }
}

impl ListQuery {
    /// From GET query parameters (`filter`, `sortBy`, `sortOrder`, `startIndex`, `count`,
    /// `attributes`, `excludedAttributes`); `param` looks one up by name.
    pub fn from_params<'a>(
        param: impl Fn(&str) -> Option<&'a str>,
        max_count: u64,
    ) -> Result<ListQuery, ScimError> {
        Ok(ListQuery {
            filter: param("filter").map(parse_filter).transpose()?.flatten(),
            sort: Sort::parse(param("sortBy"), param("sortOrder"))?,
            page: Page::parse(param("startIndex"), param("count"), max_count)?,
            projection: Projection::from_params(param("attributes"), param("excludedAttributes")),
        })
    }

    /// From a `POST /.search` body. `schemas` must be the SearchRequest URN (compared
    /// case-insensitively; otherwise 400 `invalidValue`); an unknown or repeated member is 400
    /// `invalidSyntax`; a member that is `null` counts as absent; the rest has the same
    /// meaning and defaults as the query parameters.
    pub fn from_search_request(body: &Value, max_count: u64) -> Result<ListQuery, ScimError> {
        let obj: &Map<String, Value> = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a search request must be a JSON object"))?;
        // The members' names first, so a body with both an unknown member and a bad value
        // is always reported as the unknown member.
        let mut members: Vec<(&str, &Value)> = Vec::new();
        for (key, value) in obj {
            let Some(member) = SEARCH_MEMBERS
                .iter()
                .copied()
                .find(|m| m.eq_ignore_ascii_case(key))
            else {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown member \"{key}\" in the search request; allowed: {}",
                    SEARCH_MEMBERS.join(", ")
                )));
            };
            if members.iter().any(|(m, _)| *m == member) {
                return Err(ScimError::invalid_syntax(format!(
                    "\"{member}\" appears more than once in the search request"
                )));
            }
            members.push((member, value));
        }
        let mut schemas_ok = false;
        let mut attributes = Vec::new();
        let mut excluded = Vec::new();
        let (mut filter, mut sort_by, mut sort_order) = (None, None, None);
        let (mut start, mut count) = (None, None);
        for (member, value) in members {
            if value.is_null() {
                continue;
            }
            match member {
                "schemas" => {
                    check_search_schemas(value)?;
                    schemas_ok = true;
                }
                "attributes" => attributes = names_member(member, value)?,
                "excludedAttributes" => excluded = names_member(member, value)?,
                "filter" => filter = parse_filter(str_member(member, value)?)?,
                "sortBy" => sort_by = Some(str_member(member, value)?),
                "sortOrder" => sort_order = Some(str_member(member, value)?),
                "startIndex" => start = Some(int_member(member, value)?),
                _ => count = Some(int_member(member, value)?),
            }
        }
        if !schemas_ok {
            return Err(ScimError::invalid_value(format!(
                "a search request needs \"schemas\": [\"{SEARCH_URN}\"]"
            )));
        }
        Ok(ListQuery {
            filter,
            sort: Sort::parse(sort_by, sort_order)?,
            page: Page::new(start, count, max_count),
            projection: Projection::new(attributes, excluded),
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
        assert!(Page::parse(None, Some("1.5"), 10).is_err());
        assert!(Page::parse(None, Some(""), 10).is_err());
        // Out-of-range integers saturate instead of failing.
        assert_eq!(
            Page::parse(
                Some("99999999999999999999999"),
                Some("-99999999999999999999"),
                10
            )
            .unwrap(),
            Page {
                start_index: i64::MAX as u64,
                count: 0
            }
        );
        assert_eq!(Page::parse(None, None, 10).unwrap().count, 10);
        assert_eq!(Page::parse(Some(" 3 "), Some("+4"), 10).unwrap().count, 4);
        let v = list_response(0, 1, vec![]);
        assert_eq!(v["itemsPerPage"], 0);
        assert_eq!(v["Resources"], json!([]));
    }

    fn search(body: Value) -> Result<ListQuery, ScimError> {
        ListQuery::from_search_request(&body, 50)
    }

    #[test]
    fn search_request_has_the_query_parameters_meaning() {
        let q = search(json!({
            "schemas": ["URN:ietf:params:scim:api:messages:2.0:searchrequest"],
            "attributes": ["userName", "name.givenName"],
            "excludedAttributes": ["emails"],
            "filter": "userName eq \"a\"",
            "sortBy": "userName",
            "sortOrder": "DESCENDING",
            "startIndex": 0,
            "COUNT": 500,
        }))
        .unwrap();
        let from_get = ListQuery::from_params(
            |name| match name {
                "filter" => Some("userName eq \"a\""),
                "sortBy" => Some("userName"),
                "sortOrder" => Some("descending"),
                "startIndex" => Some("-1"),
                "count" => Some("9999"),
                "attributes" => Some("userName,name.givenName"),
                "excludedAttributes" => Some("emails"),
                _ => None,
            },
            50,
        )
        .unwrap();
        assert_eq!(q, from_get);
        assert_eq!(
            q.page,
            Page {
                start_index: 1,
                count: 50
            }
        );
        assert_eq!(
            q.sort,
            Some(Sort {
                by: "userName".into(),
                order: SortOrder::Descending
            })
        );
        assert!(q.filter.is_some());
        // Only schemas: everything defaults; nulls are absent.
        let q = search(json!({"schemas": [SEARCH_URN], "filter": null, "count": null})).unwrap();
        assert_eq!(
            q.page,
            Page {
                start_index: 1,
                count: 50
            }
        );
        assert_eq!((q.filter, q.sort), (None, None));
        assert_eq!(q.projection, Projection::default());
        // A comma-separated string is accepted for attributes.
        let q = search(json!({"schemas": [SEARCH_URN], "attributes": "userName,emails"})).unwrap();
        assert_eq!(q.projection, Projection::new(["userName", "emails"], []));
    }

    #[test]
    fn bad_search_requests_are_refused() {
        let code = |body: Value| search(body).unwrap_err().scim_type.map(|t| t.as_str());
        let urn = SEARCH_URN;
        for (body, expected) in [
            (json!({}), "invalidValue"),
            (json!({"schemas": null}), "invalidValue"),
            (json!({"schemas": "x"}), "invalidValue"),
            (json!({"schemas": []}), "invalidValue"),
            (json!({"schemas": [LIST_URN]}), "invalidValue"),
            (json!({"schemas": [urn, "urn:x"]}), "invalidValue"),
            (json!({"schemas": [urn], "bogus": 1}), "invalidSyntax"),
            (
                json!({"schemas": [urn], "count": 1, "Count": 2}),
                "invalidSyntax",
            ),
            (json!([urn]), "invalidSyntax"),
            (json!({"schemas": [urn], "count": "ten"}), "invalidValue"),
            (json!({"schemas": [urn], "count": 1.5}), "invalidValue"),
            (
                json!({"schemas": [urn], "startIndex": true}),
                "invalidValue",
            ),
            (json!({"schemas": [urn], "attributes": [1]}), "invalidValue"),
            (
                json!({"schemas": [urn], "excludedAttributes": {}}),
                "invalidValue",
            ),
            (json!({"schemas": [urn], "filter": 3}), "invalidValue"),
            (
                json!({"schemas": [urn], "filter": "userName zz 1"}),
                "invalidFilter",
            ),
            (json!({"schemas": [urn], "sortOrder": "up"}), "invalidValue"),
            (json!({"schemas": [urn], "sortBy": 1}), "invalidValue"),
        ] {
            assert_eq!(code(body.clone()), Some(expected), "{body}");
        }
        // sortOrder is validated on GET too, even without sortBy.
        let bad = ListQuery::from_params(|n| (n == "sortOrder").then_some("sideways"), 10);
        assert!(bad.is_err());
    }
}
