//! `[admin]`: the admin console at `/admin/` (docs/console.md): whether it is served, how long
//! a login lasts, and how many SCIM requests its inspector keeps in memory.

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    enabled: Option<bool>,
    session_hours: Option<Spanned<i64>>,
    inspector_size: Option<Spanned<i64>>,
}

/// The `[admin]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Whether `/admin/` is served. Default: only when every listen address is loopback and
    /// no TLS proxy forwards outside clients to it.
    pub enabled: bool,
    /// How long a console login lasts (never past its token's expiry).
    pub session_hours: u32,
    /// SCIM requests the inspector keeps per tenant; 0 turns it off.
    pub inspector_size: usize,
}

pub const DEFAULT_SESSION_HOURS: u32 = 8;
pub const MAX_SESSION_HOURS: i64 = 24 * 30;
pub const DEFAULT_INSPECTOR_SIZE: usize = 1000;
pub const MAX_INSPECTOR_SIZE: i64 = 100_000;

impl AdminConfig {
    /// The defaults for a server whose listener is (or is not) reachable from this machine only.
    pub fn defaults(local_only: bool) -> AdminConfig {
        AdminConfig {
            enabled: local_only,
            session_hours: DEFAULT_SESSION_HOURS,
            inspector_size: DEFAULT_INSPECTOR_SIZE,
        }
    }
}

/// `local_only`: every listen address is loopback and `behind_tls_proxy` is off (a proxy on
/// the same host would bring the whole network to a loopback listener).
pub(super) fn validate(
    raw: Option<RawAdmin>,
    local_only: bool,
    origin: &str,
    text: &str,
) -> Result<AdminConfig, ConfigError> {
    let mut config = AdminConfig::defaults(local_only);
    let Some(raw) = raw else {
        return Ok(config);
    };
    let at = |offset: usize, message: String| ConfigError::at(origin, text, offset, message);
    if let Some(enabled) = raw.enabled {
        config.enabled = enabled;
    }
    if let Some(hours) = raw.session_hours {
        let n = *hours.get_ref();
        if !(1..=MAX_SESSION_HOURS).contains(&n) {
            return Err(at(
                hours.span().start,
                format!(
                    "admin.session_hours = {n} is outside 1..={MAX_SESSION_HOURS} (hours a console login lasts)"
                ),
            ));
        }
        config.session_hours = n as u32;
    }
    if let Some(size) = raw.inspector_size {
        let n = *size.get_ref();
        if !(0..=MAX_INSPECTOR_SIZE).contains(&n) {
            return Err(at(
                size.span().start,
                format!(
                    "admin.inspector_size = {n} is outside 0..={MAX_INSPECTOR_SIZE} (requests kept per tenant; 0 turns the inspector off)"
                ),
            ));
        }
        config.inspector_size = n as usize;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scim.toml");
        std::fs::write(&path, text).unwrap();
        Config::from_file(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default_only_where_no_one_else_can_reach_it() {
        let c = load("").unwrap();
        assert_eq!(c.admin, AdminConfig::defaults(true));
        assert!(c.admin.enabled);
        assert_eq!(c.admin.session_hours, 8);
        assert_eq!(c.admin.inspector_size, 1000);
        for text in [
            "listen = \"0.0.0.0:8080\"\nbehind_tls_proxy = true\n",
            // A proxy on this host forwards everyone to the loopback listener.
            "listen = \"127.0.0.1:8080\"\nbehind_tls_proxy = true\n",
            "listen = \"0.0.0.0:8443\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        ] {
            assert!(!load(text).unwrap().admin.enabled, "{text}");
        }
        let on =
            load("listen = \"0.0.0.0:8080\"\nbehind_tls_proxy = true\n[admin]\nenabled = true\n")
                .unwrap();
        assert!(on.admin.enabled);
        let off = load("[admin]\nenabled = false\n").unwrap();
        assert!(!off.admin.enabled);
        let c = load("[admin]\nsession_hours = 1\ninspector_size = 0\n").unwrap();
        assert_eq!((c.admin.session_hours, c.admin.inspector_size), (1, 0));
    }

    #[test]
    fn bad_values_name_their_line() {
        for (text, needle) in [
            (
                "[admin]\nsession_hours = 0\n",
                "scim.toml:2: admin.session_hours = 0",
            ),
            (
                "[admin]\n\nsession_hours = 721\n",
                "scim.toml:3: admin.session_hours = 721",
            ),
            (
                "[admin]\ninspector_size = -1\n",
                "scim.toml:2: admin.inspector_size = -1",
            ),
            (
                "[admin]\ninspector_size = 100001\n",
                "scim.toml:2: admin.inspector_size",
            ),
            ("[admin]\nenabled = \"yes\"\n", "line 2"),
            ("[admin]\nenable = true\n", "enable"),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
