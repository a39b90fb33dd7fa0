//! `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`.

use super::{App, Ctx};
use crate::http::Response;
use crate::scim::{discovery, list, ScimError};

pub fn serve(app: &App, ctx: &Ctx, segs: &[&str]) -> Result<Response, ScimError> {
    // RFC 7644 §4: these endpoints ignore filtering, so a client sending a filter must not be
    // led to think its conditions were applied.
    if ctx.param("filter").is_some() {
        return Err(ScimError::new(
            403,
            None,
            "the discovery endpoints do not support filtering (RFC 7644 section 4)",
        ));
    }
    let base = &ctx.base;
    let doc = match segs {
        ["ServiceProviderConfig"] => discovery::service_provider_config(
            base,
            app.max_page_size,
            app.bulk_max_operations,
            app.bulk_max_payload_bytes,
            app.cursor_timeout_secs,
        ),
        ["Schemas"] => {
            let all = discovery::schemas(&app.registry, base);
            list::list_response(all.len() as u64, 1, all)
        }
        ["Schemas", id] => discovery::schema(&app.registry, id, base)
            .ok_or_else(|| ScimError::not_found(format!("no schema \"{id}\"")))?,
        ["ResourceTypes"] => {
            let all: Vec<_> = discovery::RESOURCE_TYPES
                .iter()
                .filter_map(|t| discovery::resource_type(&app.registry, t, base))
                .collect();
            list::list_response(all.len() as u64, 1, all)
        }
        ["ResourceTypes", id] => discovery::resource_type(&app.registry, id, base)
            .ok_or_else(|| ScimError::not_found(format!("no resource type \"{id}\"")))?,
        _ => return Err(ScimError::not_found("no such discovery endpoint")),
    };
    Ok(Response::json(200, &doc))
}
