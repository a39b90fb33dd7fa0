//! `POST /Users/.search`, `POST /Groups/.search` and `POST /.search` (RFC 7644 §3.4.3), and
//! the list engine they share with `GET /Users` and `GET /Groups`.
//!
//! The root search covers Users and Groups together: `totalResults` is the sum of both, and
//! paging runs over the concatenation of all matching Users and then all matching Groups, each
//! in the store's stable creation order. A filter that the store cannot evaluate for one of
//! the two types (an attribute only the other type has, such as `userName`) matches no
//! resource of that type; only when neither type can evaluate it is it a 400. The two types
//! are read one after the other, not in one snapshot: a write in between can shift a root
//! page by that one change, as it could between two pages anyway.

use super::resources::render;
use super::{App, Ctx};
use crate::http::Response;
use crate::scim::list::{self, ListQuery, Page};
use crate::scim::{ResourceKind, ScimError};
use crate::store::StoreError;

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
pub fn run(
    app: &App,
    ctx: &Ctx,
    kinds: &[ResourceKind],
    query: &ListQuery,
) -> Result<Response, ScimError> {
    // `query.sort` is not passed on: the store has no sort parameter yet (see ListQuery).
    let mut skip = query.page.start_index.saturating_sub(1);
    let mut want = query.page.count;
    let mut total: u64 = 0;
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for &kind in kinds {
        let page = Page {
            start_index: skip.saturating_add(1),
            count: want,
        };
        match app
            .store
            .list(&ctx.principal.tenant, kind, query.filter.as_ref(), page)
        {
            Ok((n, found)) => {
                total = total.saturating_add(n);
                skip = skip.saturating_sub(n);
                want = want.saturating_sub(found.len() as u64);
                rows.extend(found);
            }
            Err(StoreError::UnsupportedFilter(m)) if kinds.len() > 1 => {
                log::debug!("root search: the filter matches no {}: {m}", kind.name());
                refused.push(StoreError::UnsupportedFilter(m));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if refused.len() == kinds.len() {
        if let Some(e) = refused.into_iter().next() {
            return Err(e.into());
        }
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
