//! `scimlite events tail` and `scimlite events rotate-key`.

use std::process::ExitCode;
use std::time::Duration;

use super::{fail, EventsAction};
use crate::config::Config;
use crate::scim::events::{set_claims, EventHead};
use crate::store::{EventStore, StoredEvent};

pub fn run(config: &Config, action: EventsAction) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match action {
        EventsAction::Tail {
            tenant,
            follow,
            since,
            json,
        } => tail(config, &*store, tenant.as_deref(), follow, since, json),
        EventsAction::RotateKey => match crate::events::Signer::default().rotate(&*store) {
            Ok(kid) => {
                eprintln!(
                    "new event signing key {kid}; it signs from the running server's next minute on, and the old keys stay in {} so receivers verify what they signed",
                    crate::api::events::JWKS_PATH
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

/// One line per event: when, tenant, the resource, the event names, what a PATCH changed.
fn line(e: &StoredEvent, claims: &serde_json::Value) -> String {
    let names: Vec<String> = claims["events"]
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| {
                    k.strip_prefix("urn:ietf:params:scim:event:")
                        .unwrap_or(k)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let changed: Vec<String> = e
        .change
        .operations
        .iter()
        .filter_map(|op| {
            Some(format!(
                "{} {}",
                op.get("op")?.as_str()?,
                op.get("path")?.as_str()?
            ))
        })
        .collect();
    let name = e
        .change
        .doc
        .as_ref()
        .and_then(|d| d.get("userName").or_else(|| d.get("displayName")))
        .and_then(|v| v.as_str())
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let mut out = format!(
        "{}  {}  {} {}{}  {}",
        e.at,
        e.tenant,
        e.kind.name(),
        e.resource_id,
        name,
        names.join(" ")
    );
    if !changed.is_empty() {
        out.push_str(&format!("  [{}]", changed.join(", ")));
    }
    out
}

fn tail(
    config: &Config,
    store: &dyn EventStore,
    tenant: Option<&str>,
    follow: bool,
    since: Option<String>,
    json: bool,
) -> ExitCode {
    let since = since.unwrap_or_else(|| {
        crate::store::format_utc_millis(time::OffsetDateTime::now_utc() - time::Duration::hours(1))
    });
    let mut after = 0;
    loop {
        let batch = match store.events_after(tenant, after, 500) {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        for e in &batch {
            after = e.seq;
            if e.at < since {
                continue;
            }
            let claims = set_claims(
                config.registry.resource(e.kind),
                EventHead {
                    jti: &e.jti,
                    txn: &e.txn,
                    at: &e.at,
                    kind: e.kind,
                    id: &e.resource_id,
                },
                &e.change,
                config.events.issuer.as_deref().unwrap_or(""),
            );
            if json {
                println!("{claims}");
            } else {
                println!("{}", line(e, &claims));
            }
        }
        if batch.len() < 500 {
            if !follow {
                return ExitCode::SUCCESS;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
