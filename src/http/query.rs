//! Query-string decoding. `+` is a space: Okta's and Entra's validator traffic encode filters
//! that way (okta.md §1, entra.md §3.4), others use `%20`.

/// Percent-decodes one component, treating `+` as a space. Invalid escapes are kept as
/// written; invalid UTF-8 becomes U+FFFD.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Parses `a=1&b=2` into decoded pairs; parameter names keep their case.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The first value of a parameter, matched case-insensitively (RFC 7644 §3.4.2 names are
/// case-insensitive in practice: clients send `startindex`).
pub fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Percent-decodes a path segment (`+` stays a plus there).
pub fn decode_path(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_space_encodings() {
        assert_eq!(decode("userName+eq+%22a%40b.c%22"), "userName eq \"a@b.c\"");
        assert_eq!(decode("userName%20eq%20\"x\""), "userName eq \"x\"");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
        let p = parse("filter=a+eq+1&count=5&aadOptscim062020");
        assert_eq!(get(&p, "COUNT"), Some("5"));
        assert_eq!(get(&p, "aadOptscim062020"), Some(""));
    }
}
