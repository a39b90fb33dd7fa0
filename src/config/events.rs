//! `[events]`: how long provisioning events are kept, the SETs' issuer, and the receivers
//! they are pushed to (`[[events.push]]`, RFC 8935).

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use crate::events::push::{Receiver, Timing};
use crate::events::DEFAULT_RETENTION_DAYS;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    retention_days: Option<u32>,
    issuer: Option<Spanned<String>>,
    push_timeout_secs: Option<u64>,
    push_max_backoff_secs: Option<u64>,
    push: Option<Vec<RawPush>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    tenant: Option<Spanned<String>>,
    url: Spanned<String>,
    authorization: Option<String>,
}

/// The `[events]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Events older than this are pruned, delivered or not.
    pub retention_days: u32,
    /// The SETs' `iss`; `None`: the server's base URL.
    pub issuer: Option<String>,
    /// How long a receiver has to answer one POST, and the longest wait between retries.
    pub push_timing: Timing,
    pub push: Vec<Receiver>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: DEFAULT_RETENTION_DAYS,
            issuer: None,
            push_timing: Timing::default(),
            push: Vec::new(),
        }
    }
}

/// An `http(s)://` URL whose events may carry personal data: HTTPS, or plain HTTP to this
/// machine only (RFC 9967 requires TLS for SETs with PII).
fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("\"{url}\" is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        // The URL is logged and labels the receiver in /metrics: no secrets in it.
        return Err(format!(
            "\"{url}\" holds credentials: put them in `authorization` (sent as the Authorization header)"
        ));
    }
    let host = authority;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" names no host"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "\"{url}\": events carry personal data, so a receiver on another machine needs https://"
        )),
        _ => Err(format!("\"{url}\" is not an http:// or https:// URL")),
    }
}

pub(super) fn validate(
    raw: Option<RawEvents>,
    origin: &str,
    text: &str,
) -> Result<EventsConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(EventsConfig::default());
    };
    let at = |offset: usize, message: String| ConfigError::at(origin, text, offset, message);
    let retention_days = raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
    if retention_days == 0 {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            key: "events.retention_days",
            message: "must be at least 1 (events are kept that many days)".into(),
        });
    }
    let issuer = match raw.issuer {
        Some(i) if i.get_ref().trim().is_empty() => {
            return Err(at(i.span().start, "issuer cannot be empty".into()))
        }
        Some(i) => Some(i.into_inner()),
        None => None,
    };
    let mut push_timing = Timing::default();
    for (key, value, slot) in [
        (
            "events.push_timeout_secs",
            raw.push_timeout_secs,
            &mut push_timing.timeout,
        ),
        (
            "events.push_max_backoff_secs",
            raw.push_max_backoff_secs,
            &mut push_timing.max_backoff,
        ),
    ] {
        match value {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_string(),
                    key,
                    message: "must be at least 1 second".into(),
                })
            }
            Some(n) => *slot = std::time::Duration::from_secs(n),
            None => {}
        }
    }
    push_timing.first_backoff = push_timing.first_backoff.min(push_timing.max_backoff);
    let mut push = Vec::new();
    for p in raw.push.unwrap_or_default() {
        check_url(p.url.get_ref()).map_err(|m| at(p.url.span().start, format!("url = {m}")))?;
        let tenant = match p.tenant {
            Some(t) => {
                crate::tenant::validate_name(t.get_ref()).map_err(|e| {
                    at(t.span().start, format!("tenant = \"{}\": {e}", t.get_ref()))
                })?;
                t.into_inner()
            }
            None => crate::store::DEFAULT_TENANT.to_string(),
        };
        let receiver = Receiver {
            tenant,
            url: p.url.get_ref().clone(),
            authorization: p.authorization,
        };
        if push.contains(&receiver) {
            return Err(at(
                p.url.span().start,
                format!("url = \"{}\" is listed twice for one tenant", receiver.url),
            ));
        }
        push.push(receiver);
    }
    Ok(EventsConfig {
        retention_days,
        issuer,
        push_timing,
        push,
    })
}

#[cfg(test)]
mod tests {

    use super::super::load_text as load;

    #[test]
    fn receivers_need_https_unless_on_this_machine() {
        let c = load(
            "[events]\nretention_days = 7\n[[events.push]]\nurl = \"https://app.example.com/e\"\nauthorization = \"Bearer x\"\n[[events.push]]\ntenant = \"acme\"\nurl = \"http://127.0.0.1:9000/e\"\n",
        )
        .unwrap();
        assert_eq!(c.events.retention_days, 7);
        assert_eq!(c.events.push.len(), 2);
        assert_eq!(c.events.push[0].tenant, "default");
        assert_eq!(c.events.push[1].tenant, "acme");
        for (text, needle) in [
            (
                "[[events.push]]\nurl = \"http://app.example.com/e\"\n",
                "https://",
            ),
            (
                "[[events.push]]\nurl = \"ftp://x/e\"\n",
                "http:// or https://",
            ),
            (
                "[[events.push]]\ntenant = \"Acme\"\nurl = \"https://x/e\"\n",
                "tenant",
            ),
            ("[events]\nretention_days = 0\n", "at least 1"),
            (
                "[[events.push]]\nurl = \"https://user:pw@x/e\"\n",
                "authorization",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(load("[[events.push]]\nurl = \"http://[::1]:9/e\"\n").is_ok());
        assert!(load("[[events.push]]\nurl = \"http://localhost/e\"\n").is_ok());
    }
}
