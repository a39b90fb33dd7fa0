//! List and search requests (RFC 7644 §3.4.2 query parameters, §3.4.3 `POST /.search`
//! bodies): filter, sort, paging by index or by cursor (RFC 9865), projection; and the
//! ListResponse.

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
}

/// How a list request pages: by index (RFC 7644 §3.4.2.4, the default) or, when it names a
/// `cursor`, by cursor (RFC 9865).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Index(Page),
    Cursor {
        /// As sent; empty for the first page.
        cursor: String,
        /// At most the largest page size (a larger `count` is refused, not clamped).
        count: u64,
    },
}

impl Paging {
    /// RFC 9865 §2.4: `startIndex` asks for index paging and `cursor` for cursor paging, so a
    /// request with both is refused. With a cursor, `count` defaults as for index paging, a
    /// negative one means 0 (§2), and one above `max_count` or not an integer is 400
    /// `invalidCount` (§2.1: "Count value must be between 0 and service provider's
    /// maxPageSize"); index paging keeps clamping it (RFC 7644 §3.4.2.4).
    fn new(
        start_index: Option<Result<i64, ScimError>>,
        count: Option<Result<i64, ScimError>>,
        cursor: Option<String>,
        max_count: u64,
    ) -> Result<Paging, ScimError> {
        let Some(cursor) = cursor else {
            return Ok(Paging::Index(Page::new(
                start_index.transpose()?,
                count.transpose()?,
                max_count,
            )));
        };
        if start_index.is_some() {
            return Err(ScimError::invalid_value(
                "\"startIndex\" and \"cursor\" cannot be used together: startIndex asks for index paging, cursor for cursor paging (RFC 9865 section 2.4)",
            ));
        }
        let invalid_count = || {
            ScimError::bad_request(
                ScimType::InvalidCount,
                format!("\"count\" must be an integer from 0 to {max_count} (maxPageSize) with a cursor"),
            )
        };
        let count = match count {
            None => DEFAULT_COUNT.min(max_count),
            Some(Err(_)) => return Err(invalid_count()),
            Some(Ok(c)) if c <= 0 => 0,
            Some(Ok(c)) if c as u64 > max_count => return Err(invalid_count()),
            Some(Ok(c)) => c as u64,
        };
        Ok(Paging::Cursor { cursor, count })
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
    /// The filter as the client wrote it (trimmed): a cursor belongs to it.
    pub filter_text: Option<String>,
    /// Applied by the store (`Store::list`); without it results come in creation order.
    pub sort: Option<Sort>,
    pub paging: Paging,
    pub projection: Projection,
}

/// The members of a SearchRequest (RFC 7644 §3.4.3, and `cursor` of RFC 9865 §3), matched
/// case-insensitively.
const SEARCH_MEMBERS: [&str; 9] = [
    "schemas",
    "attributes",
    "excludedAttributes",
    "filter",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
    "cursor",
];

/// The filter and its text; an empty one is none.
fn parse_filter(f: &str) -> Result<(Option<Filter>, Option<String>), ScimError> {
    let f = f.trim();
    if f.is_empty() {
        return Ok((None, None));
    }
    Ok((Some(filter::parse(f)?), Some(f.to_string())))
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
    /// `cursor`, `attributes`, `excludedAttributes`); `param` looks one up by name.
    pub fn from_params<'a>(
        param: impl Fn(&str) -> Option<&'a str>,
        max_count: u64,
    ) -> Result<ListQuery, ScimError> {
        let (filter, filter_text) = param("filter")
            .map(parse_filter)
            .transpose()?
            .unwrap_or_default();
        Ok(ListQuery {
            filter,
            filter_text,
            sort: Sort::parse(param("sortBy"), param("sortOrder"))?,
            paging: Paging::new(
                param("startIndex").map(|v| parse_int("startIndex", v)),
                param("count").map(|v| parse_int("count", v)),
                param("cursor").map(str::to_string),
                max_count,
            )?,
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
        let ((mut filter, mut filter_text), mut sort_by, mut sort_order) =
            ((None, None), None, None);
        let (mut start, mut count, mut cursor) = (None, None, None);
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
                "filter" => (filter, filter_text) = parse_filter(str_member(member, value)?)?,
                "sortBy" => sort_by = Some(str_member(member, value)?),
                "sortOrder" => sort_order = Some(str_member(member, value)?),
                "startIndex" => start = Some(int_member(member, value)),
                "count" => count = Some(int_member(member, value)),
                _ => {
                    let text = value.as_str().ok_or_else(|| {
                        ScimError::bad_request(
                            ScimType::InvalidCursor,
                            "\"cursor\" must be a string: empty for the first page, then a nextCursor or previousCursor",
                        )
                    })?;
                    cursor = Some(text.to_string());
                }
            }
        }
        if !schemas_ok {
            return Err(ScimError::invalid_value(format!(
                "a search request needs \"schemas\": [\"{SEARCH_URN}\"]"
            )));
        }
        Ok(ListQuery {
            filter,
            filter_text,
            sort: Sort::parse(sort_by, sort_order)?,
            paging: Paging::new(start, count, cursor, max_count)?,
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

/// A cursor-paged ListResponse (RFC 9865 §2): no `startIndex`; `nextCursor` on every page
/// but the last, `previousCursor` on every page but the first.
pub fn cursor_list_response(
    total: u64,
    resources: Vec<Value>,
    next: Option<String>,
    previous: Option<String>,
) -> Value {
    let mut v = json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    if let Some(c) = next {
        v["nextCursor"] = Value::String(c);
    }
    if let Some(c) = previous {
        v["previousCursor"] = Value::String(c);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paging of GET parameters `startIndex`, `count` and `cursor`.
    fn paging(
        start_index: Option<&str>,
        count: Option<&str>,
        cursor: Option<&str>,
        max_count: u64,
    ) -> Result<Paging, ScimError> {
        ListQuery::from_params(
            |name| match name {
                "startIndex" => start_index,
                "count" => count,
                "cursor" => cursor,
                _ => None,
            },
            max_count,
        )
        .map(|q| q.paging)
    }

    /// Index paging from GET parameters.
    fn index_page(
        start_index: Option<&str>,
        count: Option<&str>,
        max_count: u64,
    ) -> Result<Page, ScimError> {
        match paging(start_index, count, None, max_count)? {
            Paging::Index(p) => Ok(p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paging_rules() {
        assert_eq!(
            index_page(None, None, 1000).unwrap(),
            Page {
                start_index: 1,
                count: 100
            }
        );
        assert_eq!(
            index_page(Some("0"), Some("-5"), 1000).unwrap(),
            Page {
                start_index: 1,
                count: 0
            }
        );
        assert_eq!(
            index_page(Some("7"), Some("5000"), 1000).unwrap(),
            Page {
                start_index: 7,
                count: 1000
            }
        );
        assert!(index_page(Some("x"), None, 10).is_err());
        assert!(index_page(None, Some("1.5"), 10).is_err());
        assert!(index_page(None, Some(""), 10).is_err());
        // Out-of-range integers saturate instead of failing.
        assert_eq!(
            index_page(
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
        assert_eq!(index_page(None, None, 10).unwrap().count, 10);
        assert_eq!(index_page(Some(" 3 "), Some("+4"), 10).unwrap().count, 4);
        let v = list_response(0, 1, vec![]);
        assert_eq!(v["itemsPerPage"], 0);
        assert_eq!(v["Resources"], json!([]));
    }

    /// RFC 9865: `cursor` (empty or not) asks for cursor paging; `count` defaults, a negative
    /// one is 0, one above the largest page or not an integer is `invalidCount` (index paging
    /// still clamps it); `startIndex` beside `cursor` is refused; a search body means the same.
    #[test]
    fn cursor_paging_rules() {
        let cursor = |c: &str, count: u64| Paging::Cursor {
            cursor: c.into(),
            count,
        };
        assert_eq!(paging(None, None, Some(""), 1000).unwrap(), cursor("", 100));
        assert_eq!(paging(None, None, Some(""), 10).unwrap(), cursor("", 10));
        assert_eq!(
            paging(None, Some("-3"), Some("x"), 10).unwrap(),
            cursor("x", 0)
        );
        assert_eq!(
            paging(None, Some("10"), Some(""), 10).unwrap(),
            cursor("", 10)
        );
        let code = |r: Result<Paging, ScimError>| r.unwrap_err().scim_type.map(|t| t.as_str());
        assert_eq!(
            code(paging(None, Some("11"), Some(""), 10)),
            Some("invalidCount")
        );
        assert_eq!(
            code(paging(None, Some("ten"), Some(""), 10)),
            Some("invalidCount")
        );
        assert_eq!(
            code(paging(None, Some("99999999999999999999"), Some(""), 10)),
            Some("invalidCount")
        );
        assert_eq!(
            code(paging(Some("1"), None, Some(""), 10)),
            Some("invalidValue")
        );
        assert_eq!(
            code(paging(Some(""), None, Some("abc"), 10)),
            Some("invalidValue")
        );
        // Without a cursor nothing changed: clamped, and a bad count is invalidValue.
        assert_eq!(
            paging(None, Some("11"), None, 10).unwrap(),
            Paging::Index(Page {
                start_index: 1,
                count: 10
            })
        );
        assert_eq!(
            code(paging(None, Some("ten"), None, 10)),
            Some("invalidValue")
        );

        let body = |extra: Value| {
            let mut b = json!({"schemas": [SEARCH_URN], "filter": " userName sw \"a\" "});
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            ListQuery::from_search_request(&b, 10)
        };
        let q = body(json!({"Cursor": "", "count": 4})).unwrap();
        assert_eq!(q.paging, cursor("", 4));
        assert_eq!(q.filter_text.as_deref(), Some("userName sw \"a\""));
        let from_get = ListQuery::from_params(
            |n| match n {
                "filter" => Some("userName sw \"a\""),
                "cursor" => Some(""),
                "count" => Some("4"),
                _ => None,
            },
            10,
        )
        .unwrap();
        assert_eq!(q, from_get);
        assert_eq!(
            body(json!({"cursor": null})).unwrap().paging,
            Paging::Index(Page {
                start_index: 1,
                count: 10
            })
        );
        let code = |r: Result<ListQuery, ScimError>| r.unwrap_err().scim_type.map(|t| t.as_str());
        assert_eq!(code(body(json!({"cursor": 5}))), Some("invalidCursor"));
        assert_eq!(
            code(body(json!({"cursor": "", "count": 11}))),
            Some("invalidCount")
        );
        assert_eq!(
            code(body(json!({"cursor": "", "count": "x"}))),
            Some("invalidCount")
        );
        assert_eq!(
            code(body(json!({"cursor": "", "startIndex": 1}))),
            Some("invalidValue")
        );

        let v = cursor_list_response(3, vec![json!({})], Some("n".into()), None);
        assert_eq!(v["nextCursor"], "n");
        assert!(v.get("previousCursor").is_none() && v.get("startIndex").is_none());
        assert_eq!(
            (v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()),
            (Some(3), Some(1))
        );
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
            q.paging,
            Paging::Index(Page {
                start_index: 1,
                count: 50
            })
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
            q.paging,
            Paging::Index(Page {
                start_index: 1,
                count: 50
            })
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
