//! How often each token's PATCH requests needed a dialect step (`scim::patch::Quirk`):
//! counted in memory per token and kind, logged at info the first time a token sends a kind,
//! and readable as a snapshot (for a metrics endpoint, and for tests).
//!
//! An admin who sees "token 'okta-prod' sent Entra's remove-by-value PATCH" learns that a
//! token is shared between IdPs, or that an IdP changed its dialect.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::scim::patch::Quirk;

/// One counter of a [`QuirkCounter::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuirkCount {
    pub token_id: String,
    pub quirk: Quirk,
    pub count: u64,
}

#[derive(Debug, Default)]
pub struct QuirkCounter {
    counts: Mutex<HashMap<(String, Quirk), u64>>,
}

/// What an admin reads in the log: who sends this shape, and where it is catalogued.
pub fn describe(q: Quirk) -> (&'static str, &'static str) {
    match q {
        Quirk::OpNameCase => ("Entra's capitalised op names (\"Replace\")", "entra.md Q1"),
        Quirk::StringBoolean => ("Entra's \"True\"/\"False\" string booleans", "entra.md Q2"),
        Quirk::RemoveByValue => ("Entra's remove-by-value PATCH", "entra.md Q3"),
        Quirk::DottedOrUrnKeys => (
            "Entra's path-less value with dotted or URN keys",
            "entra.md Q4",
        ),
        Quirk::AddCreatesFilteredValue => (
            "Entra's add on a filtered path that matched nothing",
            "entra.md Q5",
        ),
        Quirk::SingleValueInArray => (
            "Entra's single value inside an array (manager)",
            "entra.md §3.15",
        ),
        Quirk::PathlessId => ("Okta's path-less {id, displayName} rename", "okta.md §3"),
        Quirk::SchemasInValue => (
            "a \"schemas\" member inside a PATCH value",
            "RFC 7644 §3.5.2",
        ),
    }
}

impl QuirkCounter {
    /// Counts one request's quirks; returns those this token sent for the first time (each
    /// logged at info once).
    pub fn record(&self, token_id: &str, token_name: &str, quirks: &[Quirk]) -> Vec<Quirk> {
        let mut first = Vec::new();
        {
            // A poisoned lock only means another request panicked mid-count: keep counting.
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            for &q in quirks {
                let n = counts.entry((token_id.to_string(), q)).or_insert(0);
                *n += 1;
                if *n == 1 {
                    first.push(q);
                }
            }
        }
        for &q in &first {
            let (what, source) = describe(q);
            log::info!("token '{token_name}' sent {what}; accepted ({source})");
        }
        first
    }

    /// Every counter, sorted by token id and kind.
    pub fn snapshot(&self) -> Vec<QuirkCount> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<QuirkCount> = counts
            .iter()
            .map(|((token_id, quirk), count)| QuirkCount {
                token_id: token_id.clone(),
                quirk: *quirk,
                count: *count,
            })
            .collect();
        out.sort_by(|a, b| (&a.token_id, a.quirk).cmp(&(&b.token_id, b.quirk)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_token_and_kind_and_reports_each_first_time_once() {
        let c = QuirkCounter::default();
        assert_eq!(
            c.record(
                "t1",
                "okta-prod",
                &[Quirk::RemoveByValue, Quirk::OpNameCase]
            ),
            vec![Quirk::RemoveByValue, Quirk::OpNameCase]
        );
        assert_eq!(c.record("t1", "okta-prod", &[Quirk::RemoveByValue]), vec![]);
        assert_eq!(
            c.record("t2", "entra", &[Quirk::RemoveByValue]),
            vec![Quirk::RemoveByValue]
        );
        assert_eq!(c.record("t2", "entra", &[]), vec![]);
        let count = |t: &str, q| QuirkCount {
            token_id: t.into(),
            quirk: q,
            count: 0,
        };
        let mut want = vec![
            count("t1", Quirk::OpNameCase),
            count("t1", Quirk::RemoveByValue),
            count("t2", Quirk::RemoveByValue),
        ];
        want[0].count = 1;
        want[1].count = 2;
        want[2].count = 1;
        assert_eq!(c.snapshot(), want);
    }

    #[test]
    fn every_kind_names_its_source() {
        for q in [
            Quirk::OpNameCase,
            Quirk::StringBoolean,
            Quirk::RemoveByValue,
            Quirk::DottedOrUrnKeys,
            Quirk::AddCreatesFilteredValue,
            Quirk::SingleValueInArray,
            Quirk::PathlessId,
            Quirk::SchemasInValue,
        ] {
            let (what, source) = describe(q);
            assert!(!what.is_empty() && !source.is_empty(), "{q:?}");
        }
    }
}
