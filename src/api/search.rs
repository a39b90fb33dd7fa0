//! `POST /Users/.search`, `POST /Groups/.search` and `POST /.search` (RFC 7644 §3.4.3), and
//! the list engine they share with `GET /Users` and `GET /Groups`.
//!
//! The root search covers Users and Groups together: `totalResults` is the sum of both, and
//! paging runs over the concatenation of all matching Users and then all matching Groups, each
//! in the store's stable creation order, or sorted by `sortBy` within each type. A filter on
//! an attribute only the other type has (such as `userName`) matches no resource of that type,
//! as an unknown attribute matches nothing. The two types are read one after the other, not in
//! one snapshot: a write in between can shift a root page by that one change, as it could
//! between two pages anyway.

use super::resources::render;
use super::{App, Ctx};
use crate::http::Response;
use crate::scim::list::{self, ListQuery, Page};
use crate::scim::{ResourceKind, ScimError};

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
    let mut skip = query.page.start_index.saturating_sub(1);
    let mut want = query.page.count;
    let mut total: u64 = 0;
    let mut rows = Vec::new();
    for &kind in kinds {
        let page = Page {
            start_index: skip.saturating_add(1),
            count: want,
        };
        let (n, found) = app.store.list(
            &ctx.principal.tenant,
            kind,
            query.filter.as_ref(),
            query.sort.as_ref(),
            page,
            &ctx.base,
        )?;
        total = total.saturating_add(n);
        skip = skip.saturating_sub(n);
        want = want.saturating_sub(found.len() as u64);
        rows.extend(found);
    }
    let resources = rows
        .iter()
        .map(|r| render(app, ctx, r, &query.projection))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(
        200,
        &list::list_response(total, query.page.start_index, resources),
    ))
}
