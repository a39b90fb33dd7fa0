//! `listen` addresses: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`. A host name is resolved when
//! the configuration is read, to every address the system's resolver gives for it (for
//! `localhost` typically 127.0.0.1 and ::1); the server listens on all of them, so a client
//! that tries any of the name's addresses reaches it.

use std::net::{SocketAddr, ToSocketAddrs};

/// The addresses `text` names, in the resolver's order, without duplicates; never empty.
pub(super) fn resolve(text: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let shape = || {
        format!(
            "\"{text}\" is not IP:PORT or HOST:PORT (for example \"127.0.0.1:8080\" or \"localhost:8080\")"
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(shape)?;
    let port: u16 = port.parse().map_err(|_| shape())?;
    // A bare IPv6 address needs brackets; anything else that is not a host name is refused
    // before it reaches the resolver.
    let host_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_name {
        return Err(shape());
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host name \"{host}\": {e}"))?;
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(format!("host name \"{host}\" resolves to no address"));
    }
    Ok(addrs)
}

/// The addresses as a list for messages: `127.0.0.1:8080, [::1]:8080`.
pub fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_without_the_resolver() {
        assert_eq!(
            resolve("127.0.0.1:8080").unwrap(),
            ["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(resolve("[::1]:0").unwrap(), ["[::1]:0".parse().unwrap()]);
    }

    /// `localhost` resolves to loopback addresses only, every one with the port given.
    #[test]
    fn localhost_resolves_to_loopback_addresses() {
        let addrs = resolve("localhost:8080").unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
    }

    #[test]
    fn malformed_values_are_refused_before_any_lookup() {
        for bad in [
            "nope",
            "localhost",
            "localhost:",
            "localhost:http",
            "localhost:70000",
            ":8080",
            "::1:8080",
            "a b:8080",
            "exa_mple.com:80",
        ] {
            let e = resolve(bad).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }
}
