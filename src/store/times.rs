//! The times the store writes: audit and event times that sort as text, and RFC 3339
//! timestamps for `meta`.

use std::num::NonZeroU8;

use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};

/// A UTC time as RFC 3339 with exactly three fraction digits, so that such strings sort as
/// the times they name (the audit log's `at`). Through `time`'s ISO 8601 formatter: `format!`
/// of each field was 3,200 instructions a time, three times per create (callgrind, issue 22).
pub fn format_utc_millis(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&Iso8601::<UTC_MILLIS>).unwrap_or_else(|_| {
        // Not expected: `time` holds the years 0000-9999 that four digits can.
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    })
}

/// `2026-12-07T16:36:07.123Z`: four-digit years, three fraction digits, `Z` for UTC.
const UTC_MILLIS: EncodedConfig = Config::DEFAULT
    .set_year_is_six_digits(false)
    .set_time_precision(TimePrecision::Second {
        decimal_digits: NonZeroU8::new(3),
    })
    .encode();

/// A stored RFC 3339 time in UTC at whole seconds (`2026-11-23T14:10:42Z`), as people read
/// it in `token list` and the console; `None` when it does not parse.
pub fn utc_to_the_second(rfc3339: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Current time as RFC 3339 with millisecond precision, UTC (some .NET/Java parsers dislike
/// nanoseconds; deps.md §6).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape the audit log and the events' `at` rely on (text order is time order), for
    /// times with and without milliseconds, at either end of the years `time` holds and in
    /// another offset.
    #[test]
    fn utc_millis_have_exactly_three_fraction_digits_and_z() {
        let at = |unix_ms: i128| {
            format_utc_millis(
                time::OffsetDateTime::from_unix_timestamp_nanos(unix_ms * 1_000_000).unwrap(),
            )
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_765_125_367_123), "2025-12-07T16:36:07.123Z");
        assert_eq!(at(1_765_125_367_005), "2025-12-07T16:36:07.005Z");
        assert_eq!(at(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(at(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        let nanos = time::OffsetDateTime::from_unix_timestamp_nanos(1_765_125_367_123_999_999)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(format_utc_millis(nanos), "2025-12-07T16:36:07.123Z");
        let mut sorted: Vec<String> = [5, 1_000, 999, 86_400_000, 60_000]
            .into_iter()
            .map(at)
            .collect();
        sorted.sort();
        assert_eq!(
            sorted,
            [5, 999, 1_000, 60_000, 86_400_000].map(at).to_vec(),
            "text order is time order"
        );
    }
}
