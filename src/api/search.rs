//! `POST /Users/.search`, `POST /Groups/.search` and `POST /.search` (RFC 7644 §3.4.3), and
//! the list engine they share with `GET /Users` and `GET /Groups`: index paging (RFC 7644
//! §3.4.2.4, the default) and cursor paging (RFC 9865).
//!
//! The root search covers Users and Groups together: `totalResults` is the sum of both, and
//! paging runs over the concatenation of all matching Users and then all matching Groups, each
//! in the store's stable creation order, or sorted by `sortBy` within each type. A filter on
//! an attribute only the other type has (such as `userName`) matches no resource of that type,
//! as an unknown attribute matches nothing. The two types are read one after the other, not in
//! one snapshot: a write in between can shift a root page by that one change, as it could
//! between two pages anyway.

use super::resources::{render_page, render_with};
use super::{App, Ctx};
use crate::http::Response;
use crate::scim::cursor::{Cursor, Scope};
use crate::scim::list::{self, Bound, ListQuery, Page, Paging, Position, Seek};
use crate::scim::{resource, ResourceKind, ScimError, ScimType};
use crate::store::StoredResource;

/// The resource types the root endpoint searches, in result order.
const ROOT_KINDS: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

/// `POST …/.search`; `kind` is `None` at the root.
pub fn search(app: &App, ctx: &Ctx, kind: Option<ResourceKind>) -> Result<Response, ScimError> {
    let body = ctx.json_body()?;
    let query = ListQuery::from_search_request(&body, app.max_page_size)?;
    match kind {
        Some(k) => run(app, ctx, &[k], &query),
        None => run(app, ctx, &ROOT_KINDS, &query),
    }
}

/// Runs a list query over `kinds`, concatenated in that order, and renders the ListResponse.
/// A `sortBy` that none of `kinds` can be sorted by is 400 `invalidValue`; one that only
/// some can be sorted by orders those and leaves the others in creation order.
pub fn run(
    app: &App,
    ctx: &Ctx,
    kinds: &[ResourceKind],
    query: &ListQuery,
) -> Result<Response, ScimError> {
    if let Some(sort) = &query.sort {
        if !kinds
            .iter()
            .any(|&k| sort.resolve(app.registry.resource(k)).is_some())
        {
            return Err(ScimError::invalid_value(format!(
                "cannot sort by \"{}\": not a sortable attribute of {}",
                sort.by,
                kinds
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
    }
    match &query.paging {
        Paging::Index(page) => by_index(app, ctx, kinds, query, *page),
        Paging::Cursor { cursor, count } => by_cursor(app, ctx, kinds, query, cursor, *count),
    }
}

fn by_index(
    app: &App,
    ctx: &Ctx,
    kinds: &[ResourceKind],
    query: &ListQuery,
    page: Page,
) -> Result<Response, ScimError> {
    let mut skip = page.start_index.saturating_sub(1);
    let mut want = page.count;
    let mut total: u64 = 0;
    let mut resources = Vec::new();
    for &kind in kinds {
        let page = Page {
            start_index: skip.saturating_add(1),
            count: want,
        };
        let (tenant, filter, sort) = (
            &ctx.principal.tenant,
            query.filter.as_ref(),
            query.sort.as_ref(),
        );
        // The page's `groups`/`members`, when the answer shows them, in the same read.
        let (n, found) = if query.projection.returns(
            app.registry.resource(kind),
            resource::references_attribute(kind),
        ) {
            let (n, found) = app
                .store
                .list_with_references(tenant, kind, filter, sort, page, &ctx.base)?;
            (
                n,
                found.into_iter().map(|(r, refs)| (r, Some(refs))).collect(),
            )
        } else {
            let (n, found) = app
                .store
                .list(tenant, kind, filter, sort, page, &ctx.base)?;
            (n, found.into_iter().map(|r| (r, None)).collect::<Vec<_>>())
        };
        total = total.saturating_add(n);
        skip = skip.saturating_sub(n);
        want = want.saturating_sub(found.len() as u64);
        for (r, refs) in found {
            resources.push(render_with(app, ctx, r, &query.projection, refs)?);
        }
    }
    Ok(Response::json(
        200,
        &list::list_response(total, page.start_index, resources),
    ))
}

/// A resource on a cursor page and its place in the walk.
type Placed = (StoredResource, ResourceKind, Position);

/// RFC 9865 cursor paging by keyset: a page starts next to the resource at the edge of the
/// page before (its sort value and tie-breaker, sealed in the cursor), not at an offset, so a
/// walk sees every resource that stays exactly once however many are created or deleted
/// meanwhile. `nextCursor` is on every page but the last and `previousCursor` on every page
/// but the first; an empty cursor starts at the first page. `count` must be the one the
/// cursor was issued with (§2.1, `invalidCount`); `count=0` answers `totalResults` alone.
fn by_cursor(
    app: &App,
    ctx: &Ctx,
    kinds: &[ResourceKind],
    query: &ListQuery,
    text: &str,
    count: u64,
) -> Result<Response, ScimError> {
    let scope = Scope {
        tenant: &ctx.principal.tenant,
        endpoint: match kinds {
            [one] => one.endpoint(),
            _ => "",
        },
        filter: query.filter_text.as_deref(),
        sort: query.sort.as_ref(),
    };
    let now = unix_now();
    let from = match text {
        "" => None,
        text => {
            let c = Cursor::open(text, &app.cursor_key, &scope, now, app.cursor_timeout_secs)?;
            if c.count != count {
                return Err(ScimError::bad_request(
                    ScimType::InvalidCount,
                    format!(
                        "\"count\" must stay {} while paging with this cursor, as on the first page (RFC 9865 section 2.1)",
                        c.count
                    ),
                ));
            }
            Some(c)
        }
    };
    let total = || -> Result<u64, ScimError> {
        let mut total = 0u64;
        for &kind in kinds {
            let empty = Page {
                start_index: 1,
                count: 0,
            };
            let (n, _) = app.store.list(
                &ctx.principal.tenant,
                kind,
                query.filter.as_ref(),
                None,
                empty,
                &ctx.base,
            )?;
            total = total.saturating_add(n);
        }
        Ok(total)
    };
    if count == 0 {
        // No page, so nothing to go on from (RFC 9865 §2: totalResults alone).
        return Ok(Response::json(
            200,
            &list::cursor_list_response(total()?, Vec::new(), None, None),
        ));
    }
    let backward = from.as_ref().is_some_and(|c| c.backward);
    let start = from.as_ref().map(|c| (c.kind, c.bound.clone()));
    // One more than the page: whether there is a page beyond it.
    let mut rows = seek(app, ctx, kinds, query, start.clone(), backward, count + 1)?;
    let beyond = rows.len() as u64 > count;
    rows.truncate(count as usize);
    if backward {
        rows.reverse();
    }
    // The first and last resource of the page, or for an empty page the request's own
    // position, taken inclusively: an empty page's way back leads to the resource the client
    // came from.
    let edge = |row: Option<&Placed>| -> Option<(ResourceKind, Bound)> {
        match row {
            Some((_, kind, position)) => Some((
                *kind,
                Bound {
                    position: position.clone(),
                    inclusive: false,
                },
            )),
            None => start.clone().map(|(kind, bound)| {
                (
                    kind,
                    Bound {
                        inclusive: !bound.inclusive,
                        ..bound
                    },
                )
            }),
        }
    };
    let (first, last) = (edge(rows.first()), edge(rows.last()));
    // Whether anything lies past `from` going `backward` (a page behind this one).
    let any = |from: &Option<(ResourceKind, Bound)>, backward: bool| -> Result<bool, ScimError> {
        match from {
            None => Ok(false),
            Some(f) => Ok(!seek(app, ctx, kinds, query, Some(f.clone()), backward, 1)?.is_empty()),
        }
    };
    let (has_next, has_previous) = if backward {
        (any(&last, false)?, beyond)
    } else {
        (beyond, start.is_some() && any(&first, true)?)
    };
    let seal =
        |edge: &Option<(ResourceKind, Bound)>, backward: bool| -> Result<String, ScimError> {
            let Some((kind, bound)) = edge.clone() else {
                return Err(ScimError::internal());
            };
            Cursor {
                backward,
                kind,
                bound,
                count,
                issued: now,
            }
            .seal(&app.cursor_key, &scope)
        };
    let next = has_next.then(|| seal(&last, false)).transpose()?;
    let previous = has_previous.then(|| seal(&first, true)).transpose()?;
    // A first page that holds everything needs no count.
    let total = if start.is_none() && !beyond {
        rows.len() as u64
    } else {
        total()?
    };
    let page: Vec<StoredResource> = rows.into_iter().map(|(r, _, _)| r).collect();
    let resources = render_page(app, ctx, page, &query.projection)?;
    Ok(Response::json(
        200,
        &list::cursor_list_response(total, resources, next, previous),
    ))
}

/// Up to `limit` resources next to `start` (from the start of the list without it) over
/// `kinds` in order, or before it when `backward`, nearest first.
fn seek(
    app: &App,
    ctx: &Ctx,
    kinds: &[ResourceKind],
    query: &ListQuery,
    start: Option<(ResourceKind, Bound)>,
    backward: bool,
    limit: u64,
) -> Result<Vec<Placed>, ScimError> {
    // The cursor was sealed for this endpoint, so its type is one of `kinds`; the types
    // before it (in the direction of travel) are behind the position.
    let at = match &start {
        Some((kind, _)) => kinds
            .iter()
            .position(|k| k == kind)
            .ok_or_else(ScimError::internal)?,
        None if backward => kinds.len().saturating_sub(1),
        None => 0,
    };
    let order: Vec<usize> = if backward {
        (0..=at).rev().collect()
    } else {
        (at..kinds.len()).collect()
    };
    let mut out: Vec<Placed> = Vec::new();
    for i in order {
        let want = limit - out.len() as u64;
        if want == 0 {
            break;
        }
        let from = match &start {
            Some((kind, bound)) if *kind == kinds[i] => Some(bound.clone()),
            _ => None,
        };
        let found = app.store.list_seek(
            &ctx.principal.tenant,
            kinds[i],
            query.filter.as_ref(),
            query.sort.as_ref(),
            &Seek {
                from,
                backward,
                limit: want,
            },
            &ctx.base,
        )?;
        out.extend(found.into_iter().map(|(r, p)| (r, kinds[i], p)));
    }
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
