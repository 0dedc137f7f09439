//! `host:port` for messages, events and `connect()`: the one spelling of a
//! server address, with an IPv6 literal in brackets (RFC 3986 §3.2.2, and
//! the form iSCSI `TargetAddress` uses, RFC 7143 §13.9). Pure.

/// `host:port`; `host` is a name, an IPv4 address or an IPv6 address
/// without brackets, which get added (a host name never contains `:`).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_in_brackets_names_and_ipv4_bare() {
        for (host, port, want) in [
            ("198.18.0.1", 3260, "198.18.0.1:3260"),
            ("target.example", 7260, "target.example:7260"),
            ("fd00::1", 3260, "[fd00::1]:3260"),
            ("::", 1, "[::]:1"),
            ("::ffff:198.18.0.1", 65535, "[::ffff:198.18.0.1]:65535"),
        ] {
            assert_eq!(host_port(host, port), want, "{host} {port}");
        }
    }

    #[test]
    fn socket_addrs_read_it_back() {
        for s in ["[fd00::1]:3260", "198.18.0.1:3260"] {
            let a: std::net::SocketAddr = s.parse().expect("a socket address");
            assert_eq!(host_port(&a.ip().to_string(), a.port()), s);
        }
    }
}
