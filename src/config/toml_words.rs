//! The configuration file's type errors in an admin's words. serde names Rust types ("invalid
//! type: string \"4\", expected u64", "expected struct RawTls"); an admin editing scim.toml
//! needs "expected a whole number" and a hint at the quotes. toml's framing (file, line,
//! column, the offending line) stays as it is.

/// toml's whole error text (where, and the line quoted) with its message in an admin's words.
pub(super) fn describe(error: &toml::de::Error) -> String {
    let full = error.to_string();
    let full = full.trim_end();
    let message = error.message().trim_end();
    match full.strip_suffix(message) {
        Some(frame) => format!("{frame}{}", admin_words(message)),
        None => full.to_string(),
    }
}

/// `message` (a toml/serde error message) in an admin's words; unknown shapes pass unchanged.
pub(super) fn admin_words(message: &str) -> String {
    for (prefix, lead) in [
        ("invalid type: ", "wrong type"),
        ("invalid value: ", "value out of range"),
    ] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            let expected_kind = kind_of_expected(expected);
            let found_kind = kind_of_found(found);
            let hint = match (expected_kind, found_kind) {
                (Kind::Number | Kind::Boolean, Kind::Text) => " (write it without quotes)",
                (Kind::Text, Kind::Number | Kind::Boolean) => " (put it in double quotes)",
                _ => "",
            };
            return format!(
                "{lead}: expected {}, found {}{hint}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    // Unknown, missing and duplicate keys: serde says "field".
    for (serde, ours) in [
        ("unknown field ", "unknown key "),
        ("missing field ", "missing key "),
        ("duplicate field ", "duplicate key "),
    ] {
        if let Some(rest) = message.strip_prefix(serde) {
            return format!(
                "{ours}{}",
                rest.replace("there are no fields", "this table takes no keys")
            );
        }
    }
    message.to_string()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Boolean,
    Text,
    Other,
}

fn kind_of_expected(expected: &str) -> Kind {
    match expected {
        "a boolean" => Kind::Boolean,
        "a string" | "a borrowed string" | "a character" => Kind::Text,
        e if integer_range(e).is_some() || e == "f32" || e == "f64" => Kind::Number,
        _ => Kind::Other,
    }
}

fn kind_of_found(found: &str) -> Kind {
    if found.starts_with("string ") || found.starts_with("character ") {
        Kind::Text
    } else if found.starts_with("integer ") || found.starts_with("floating point ") {
        Kind::Number
    } else if found.starts_with("boolean ") {
        Kind::Boolean
    } else {
        Kind::Other
    }
}

/// The range of an integer type serde names, as words.
fn integer_range(rust_type: &str) -> Option<&'static str> {
    Some(match rust_type {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        _ => return None,
    })
}

/// What serde's `expected …` names, in words.
fn expected_words(expected: &str) -> String {
    if let Some(words) = integer_range(expected) {
        return words.to_string();
    }
    match expected {
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" => "text in double quotes".into(),
        "a character" => "a single character in double quotes".into(),
        "a sequence" => "a list, [ … ]".into(),
        "a map" => "a table, [section] or { … }".into(),
        e if e.starts_with("struct ") => "a table, [section] or { … }".into(),
        other => other.to_string(),
    }
}

/// What serde's `invalid type: …` found, in words.
fn found_words(found: &str) -> String {
    let quoted = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_string())
    };
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    if let Some(n) = quoted("integer ").or_else(|| quoted("floating point ")) {
        return format!("the number {n}");
    }
    if let Some(b) = quoted("boolean ") {
        return b;
    }
    if let Some(c) = quoted("character ") {
        return format!("the character {c}");
    }
    match found {
        "sequence" => "a list".into(),
        // A TOML date-time reaches serde as a map too.
        "map" => "a table (or a date)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::admin_words;

    /// Every type word serde emits for the config's types has words of its own.
    #[test]
    fn serde_type_names_become_words() {
        for (serde, words) in [
            (
                "invalid type: string \"4\", expected u64",
                "wrong type: expected a whole number, 0 or more, found the text \"4\" (write it without quotes)",
            ),
            (
                "invalid type: string \"4\", expected usize",
                "wrong type: expected a whole number, 0 or more, found the text \"4\" (write it without quotes)",
            ),
            (
                "invalid type: floating point `1.5`, expected u32",
                "wrong type: expected a whole number from 0 to 4294967295, found the number 1.5",
            ),
            (
                "invalid value: integer `70000`, expected u16",
                "value out of range: expected a whole number from 0 to 65535, found the number 70000",
            ),
            (
                "invalid value: integer `-1`, expected usize",
                "value out of range: expected a whole number, 0 or more, found the number -1",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "wrong type: expected true or false, found the text \"yes\" (write it without quotes)",
            ),
            (
                "invalid type: integer `8080`, expected a string",
                "wrong type: expected text in double quotes, found the number 8080 (put it in double quotes)",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "wrong type: expected text in double quotes, found true (put it in double quotes)",
            ),
            (
                "invalid type: string \"x\", expected struct RawTls",
                "wrong type: expected a table, [section] or { … }, found the text \"x\"",
            ),
            (
                "invalid type: map, expected a sequence",
                "wrong type: expected a list, [ … ], found a table (or a date)",
            ),
            (
                "invalid type: sequence, expected a map",
                "wrong type: expected a table, [section] or { … }, found a list",
            ),
            (
                "invalid type: string \"1.5\", expected f64",
                "wrong type: expected a number, found the text \"1.5\" (write it without quotes)",
            ),
            (
                "invalid type: integer `3`, expected i64",
                "wrong type: expected a whole number, found the number 3",
            ),
            ("missing field `key`", "missing key `key`"),
            (
                "unknown field `lsiten`, expected one of `listen`, `database`",
                "unknown key `lsiten`, expected one of `listen`, `database`",
            ),
            (
                "unknown field `x`, there are no fields",
                "unknown key `x`, this table takes no keys",
            ),
            ("invalid string\nexpected `\"`", "invalid string\nexpected `\"`"),
        ] {
            assert_eq!(admin_words(serde), words, "{serde}");
        }
    }
}
