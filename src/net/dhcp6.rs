//! DHCPv6 messages (RFC 8415), pure: the client's SOLICIT and REQUEST, and
//! the server's ADVERTISE and REPLY decoded. No I/O (the socket and the
//! exchange are in [`super::dhcp6_sock`]).
//!
//! Wire format (RFC 8415 §8, §21): `msg-type u8`, `transaction-id` 3 bytes,
//! then options `code u16, length u16, data`, all integers big-endian.
//! Option codes as in RFC 8415 §21, RFC 3646 (DNS, 23), RFC 5970 (boot file
//! URL, 59) and RFC 7083 (SOL_MAX_RT, 82); the same numbers as iPXE
//! `dhcpv6.h` and dnsmasq. Decoding is checked and never panics: a short or
//! lying option ends the message with a [`DecodeError`]; unknown options
//! are kept by code, so a newer server does not break the boot.

use std::fmt;
use std::net::Ipv6Addr;

// Message types (RFC 8415 §7.3).
pub const SOLICIT: u8 = 1;
pub const ADVERTISE: u8 = 2;
pub const REQUEST: u8 = 3;
pub const REPLY: u8 = 7;

// Option codes (RFC 8415 §21, RFC 3646, RFC 5970, RFC 7083).
pub const OPT_CLIENTID: u16 = 1;
pub const OPT_SERVERID: u16 = 2;
pub const OPT_IA_NA: u16 = 3;
pub const OPT_IAADDR: u16 = 5;
pub const OPT_ORO: u16 = 6;
pub const OPT_PREFERENCE: u16 = 7;
pub const OPT_ELAPSED_TIME: u16 = 8;
pub const OPT_STATUS_CODE: u16 = 13;
pub const OPT_RAPID_COMMIT: u16 = 14;
pub const OPT_DNS_SERVERS: u16 = 23;
pub const OPT_DOMAIN_LIST: u16 = 24;
pub const OPT_BOOTFILE_URL: u16 = 59;
pub const OPT_BOOTFILE_PARAM: u16 = 60;
pub const OPT_SOL_MAX_RT: u16 = 82;

/// What we ask for in the ORO (RFC 8415 §21.7): DNS servers, the domain
/// search list, the boot file URL (a root path when it is an `iscsi:`
/// URL, as EDK2's iSCSI driver reads it) and its parameters, and
/// SOL_MAX_RT (RFC 8415 §18.2.1 makes requesting 82 a MUST).
pub const REQUESTED: [u16; 5] = [
    OPT_DNS_SERVERS,
    OPT_DOMAIN_LIST,
    OPT_BOOTFILE_URL,
    OPT_BOOTFILE_PARAM,
    OPT_SOL_MAX_RT,
];

/// Status codes (RFC 8415 §21.13).
pub const STATUS_SUCCESS: u16 = 0;
pub const STATUS_NO_ADDRS_AVAIL: u16 = 2;

/// The server port and the client port (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1), link scope.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Longest DUID (RFC 8415 §11.1: at most 128 octets plus the type code).
pub const DUID_MAX: usize = 130;
/// Most addresses / servers / options we keep from one message: a message
/// fits one datagram, these only bound the memory of a hostile one.
const MAX_ITEMS: usize = 64;

/// DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the MAC.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

/// A status code option: code and its UTF-8 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub message: String,
}

/// One IAADDR (RFC 8415 §21.6) inside an IA_NA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddr {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
    pub status: Option<Status>,
}

/// One IA_NA (RFC 8415 §21.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub addrs: Vec<IaAddr>,
    pub status: Option<Status>,
}

impl IaNa {
    /// The first address the server gives (valid lifetime > 0, no error
    /// status), if any.
    pub fn usable(&self) -> Option<&IaAddr> {
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.code != STATUS_SUCCESS)
        {
            return None;
        }
        self.addrs.iter().find(|a| {
            a.valid > 0
                && a.preferred <= a.valid
                && a.status.as_ref().is_none_or(|s| s.code == STATUS_SUCCESS)
        })
    }
}

/// A decoded server message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub msg_type: u8,
    pub xid: [u8; 3],
    pub client_id: Option<Vec<u8>>,
    pub server_id: Option<Vec<u8>>,
    pub ia_na: Vec<IaNa>,
    /// The message's own STATUS_CODE (not an IA's).
    pub status: Option<Status>,
    pub preference: Option<u8>,
    pub rapid_commit: bool,
    pub dns: Vec<Ipv6Addr>,
    /// OPT_BOOTFILE_URL as sent (RFC 5970 §3.1: a URL, no NUL).
    pub bootfile_url: Option<String>,
    pub sol_max_rt: Option<u32>,
    /// Codes of every other option, in order.
    pub other: Vec<u16>,
}

/// Why a datagram is not a DHCPv6 message we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the 4-byte message header.
    Short { len: usize },
    /// An option header or body runs past its container.
    Truncated { code: u16, at: usize },
    /// A fixed-size option of the wrong length.
    BadLength { code: u16, len: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { len } => {
                write!(
                    f,
                    "DHCPv6 message of {len} bytes, shorter than its 4-byte header"
                )
            }
            DecodeError::Truncated { code, at } => {
                write!(
                    f,
                    "DHCPv6 option {code} at byte {at} runs past the end of its message"
                )
            }
            DecodeError::BadLength { code, len } => {
                write!(
                    f,
                    "DHCPv6 option {code} has length {len}, not the length its type has"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn v6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    Some(Ipv6Addr::from(
        <[u8; 16]>::try_from(b.get(at..at + 16)?).ok()?,
    ))
}

/// The options in `b`, as (code, data, offset of the option in `base`).
fn options(b: &[u8], base: usize) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let code = be16(b, at).ok_or(DecodeError::Truncated {
            code: 0,
            at: base + at,
        })?;
        let len = be16(b, at + 2).ok_or(DecodeError::Truncated {
            code,
            at: base + at,
        })?;
        let data = b
            .get(at + 4..at + 4 + usize::from(len))
            .ok_or(DecodeError::Truncated {
                code,
                at: base + at,
            })?;
        out.push((code, data));
        at += 4 + usize::from(len);
    }
    Ok(out)
}

fn status(data: &[u8]) -> Result<Status, DecodeError> {
    let code = be16(data, 0).ok_or(DecodeError::BadLength {
        code: OPT_STATUS_CODE,
        len: data.len(),
    })?;
    Ok(Status {
        code,
        message: String::from_utf8_lossy(data.get(2..).unwrap_or(&[])).into_owned(),
    })
}

fn ia_addr(data: &[u8], base: usize) -> Result<IaAddr, DecodeError> {
    let bad = DecodeError::BadLength {
        code: OPT_IAADDR,
        len: data.len(),
    };
    let (Some(addr), Some(preferred), Some(valid)) = (v6(data, 0), be32(data, 16), be32(data, 20))
    else {
        return Err(bad);
    };
    let mut a = IaAddr {
        addr,
        preferred,
        valid,
        status: None,
    };
    for (code, d) in options(data.get(24..).unwrap_or(&[]), base + 24)? {
        if code == OPT_STATUS_CODE {
            a.status = Some(status(d)?);
        }
    }
    Ok(a)
}

fn ia_na(data: &[u8], base: usize) -> Result<IaNa, DecodeError> {
    let (Some(iaid), Some(t1), Some(t2)) = (be32(data, 0), be32(data, 4), be32(data, 8)) else {
        return Err(DecodeError::BadLength {
            code: OPT_IA_NA,
            len: data.len(),
        });
    };
    let mut ia = IaNa {
        iaid,
        t1,
        t2,
        addrs: Vec::new(),
        status: None,
    };
    for (code, d) in options(data.get(12..).unwrap_or(&[]), base + 12)? {
        match code {
            OPT_IAADDR if ia.addrs.len() < MAX_ITEMS => ia.addrs.push(ia_addr(d, base + 12)?),
            OPT_STATUS_CODE => ia.status = Some(status(d)?),
            _ => {}
        }
    }
    Ok(ia)
}

/// Decode one datagram from a server (ADVERTISE, REPLY or any other type:
/// the caller checks type, transaction id and client id).
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    let (Some(&msg_type), Some(xid)) = (b.first(), b.get(1..4)) else {
        return Err(DecodeError::Short { len: b.len() });
    };
    let mut m = Message {
        msg_type,
        xid: [xid[0], xid[1], xid[2]],
        ..Message::default()
    };
    let fixed = |code: u16, d: &[u8], len: usize| {
        if d.len() == len {
            Ok(())
        } else {
            Err(DecodeError::BadLength { code, len: d.len() })
        }
    };
    for (code, d) in options(b.get(4..).unwrap_or(&[]), 4)? {
        match code {
            OPT_CLIENTID => m.client_id = Some(d.to_vec()),
            OPT_SERVERID => m.server_id = Some(d.to_vec()),
            OPT_IA_NA if m.ia_na.len() < MAX_ITEMS => m.ia_na.push(ia_na(d, 4)?),
            OPT_STATUS_CODE => m.status = Some(status(d)?),
            OPT_PREFERENCE => {
                fixed(code, d, 1)?;
                m.preference = d.first().copied();
            }
            OPT_RAPID_COMMIT => m.rapid_commit = true,
            OPT_DNS_SERVERS => {
                if d.len() % 16 != 0 {
                    return Err(DecodeError::BadLength { code, len: d.len() });
                }
                m.dns = d
                    .chunks_exact(16)
                    .take(MAX_ITEMS)
                    .filter_map(|c| v6(c, 0))
                    .collect();
            }
            OPT_BOOTFILE_URL => m.bootfile_url = Some(String::from_utf8_lossy(d).into_owned()),
            OPT_SOL_MAX_RT => {
                fixed(code, d, 4)?;
                m.sol_max_rt = be32(d, 0);
            }
            _ if m.other.len() < MAX_ITEMS => m.other.push(code),
            _ => {}
        }
    }
    Ok(m)
}

/// One option appended to `out`. Data longer than 65535 bytes is cut (our
/// options are DUIDs and short lists).
fn put(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    let data = data.get(..usize::from(u16::MAX)).unwrap_or(data);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn header(msg_type: u8, xid: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(msg_type);
    out.extend_from_slice(&xid);
    out
}

fn oro() -> Vec<u8> {
    REQUESTED.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// IA_NA with our IAID; T1/T2 0 (the server chooses, RFC 8415 §21.4), and
/// the address we are asking for, if any (REQUEST).
fn ia_na_option(iaid: u32, addr: Option<&IaAddr>) -> Vec<u8> {
    let mut ia = Vec::with_capacity(40);
    ia.extend_from_slice(&iaid.to_be_bytes());
    ia.extend_from_slice(&[0; 8]);
    if let Some(a) = addr {
        let mut d = a.addr.octets().to_vec();
        d.extend_from_slice(&a.preferred.to_be_bytes());
        d.extend_from_slice(&a.valid.to_be_bytes());
        put(&mut ia, OPT_IAADDR, &d);
    }
    ia
}

/// SOLICIT (RFC 8415 §18.2.1): CLIENTID, IA_NA, ORO, ELAPSED_TIME
/// (`elapsed` in hundredths of a second since the exchange began).
pub fn solicit(xid: [u8; 3], duid: &[u8], iaid: u32, elapsed: u16) -> Vec<u8> {
    let mut m = header(SOLICIT, xid);
    put(&mut m, OPT_CLIENTID, duid);
    put(&mut m, OPT_IA_NA, &ia_na_option(iaid, None));
    put(&mut m, OPT_ORO, &oro());
    put(&mut m, OPT_ELAPSED_TIME, &elapsed.to_be_bytes());
    m
}

/// REQUEST (RFC 8415 §18.2.2): CLIENTID, the chosen SERVERID, IA_NA with
/// the advertised address, ORO, ELAPSED_TIME.
pub fn request(
    xid: [u8; 3],
    duid: &[u8],
    server_id: &[u8],
    iaid: u32,
    addr: &IaAddr,
    elapsed: u16,
) -> Vec<u8> {
    let mut m = header(REQUEST, xid);
    put(&mut m, OPT_CLIENTID, duid);
    put(&mut m, OPT_SERVERID, server_id);
    put(&mut m, OPT_IA_NA, &ia_na_option(iaid, Some(addr)));
    put(&mut m, OPT_ORO, &oro());
    put(&mut m, OPT_ELAPSED_TIME, &elapsed.to_be_bytes());
    m
}

/// Why a decoded message is not for us or not usable (for the log and the
/// timeout error; the text names the value, escaped: it comes from the
/// network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    NotOurs,
    NoServerId,
    Status(Status),
    NoAddress(Option<Status>),
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esc = crate::escape::escape_controls;
        match self {
            Unusable::NotOurs => f.write_str("not for our transaction or client id"),
            Unusable::NoServerId => f.write_str("no server identifier"),
            Unusable::Status(s) => write!(f, "status {} ({})", s.code, esc(&s.message)),
            Unusable::NoAddress(None) => f.write_str("no address in its IA_NA"),
            Unusable::NoAddress(Some(s)) => {
                write!(
                    f,
                    "no address in its IA_NA: status {} ({})",
                    s.code,
                    esc(&s.message)
                )
            }
        }
    }
}

/// The address a server's ADVERTISE or REPLY gives us (pure check of
/// RFC 8415 §16.3/§16.10/§18.2.10): our transaction id and client id, a
/// server id, no error status, an IA_NA with our IAID holding a usable
/// address.
pub fn offered(
    m: &Message,
    xid: [u8; 3],
    duid: &[u8],
    iaid: u32,
) -> Result<(Vec<u8>, IaAddr), Unusable> {
    if m.xid != xid || m.client_id.as_deref() != Some(duid) {
        return Err(Unusable::NotOurs);
    }
    let server = m.server_id.clone().ok_or(Unusable::NoServerId)?;
    if let Some(s) = m.status.as_ref().filter(|s| s.code != STATUS_SUCCESS) {
        return Err(Unusable::Status(s.clone()));
    }
    let ia = m.ia_na.iter().find(|ia| ia.iaid == iaid);
    match ia.and_then(IaNa::usable) {
        Some(a) => Ok((server, a.clone())),
        None => Err(Unusable::NoAddress(ia.and_then(|i| {
            i.status
                .clone()
                .or_else(|| i.addrs.iter().find_map(|a| a.status.clone()))
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn solicit_bytes() {
        let d = duid_ll(MAC);
        assert_eq!(d, [0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let m = solicit([0xab, 0xcd, 0xef], &d, 0x0012_3456, 0);
        let want: Vec<u8> = [
            &[1, 0xab, 0xcd, 0xef][..],
            &[0, 1, 0, 10],
            &d,
            &[0, 3, 0, 12, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0, 6, 0, 10, 0, 23, 0, 24, 0, 59, 0, 60, 0, 82],
            &[0, 8, 0, 2, 0, 0],
        ]
        .concat();
        assert_eq!(m, want);
    }

    #[test]
    fn request_carries_server_id_and_address() {
        let d = duid_ll(MAC);
        let a = IaAddr {
            addr: "fd00:198:18::100".parse().unwrap(),
            preferred: 3600,
            valid: 3600,
            status: None,
        };
        let m = request([1, 2, 3], &d, &[0, 1, 0, 1, 9, 9], 7, &a, 105);
        assert_eq!(&m[..4], &[3, 1, 2, 3]);
        let got = decode(&m).unwrap();
        assert_eq!(got.client_id.as_deref(), Some(&d[..]));
        assert_eq!(got.server_id.as_deref(), Some(&[0, 1, 0, 1, 9, 9][..]));
        assert_eq!(got.ia_na[0].iaid, 7);
        assert_eq!(got.ia_na[0].addrs, [a]);
        assert_eq!(got.other, [OPT_ORO, OPT_ELAPSED_TIME]);
        assert_eq!(&m[m.len() - 2..], &105u16.to_be_bytes());
    }

    // Captured from dnsmasq 2.90 by tests/fixtures/dhcp6/capture.sh (the
    // client's two messages are ours, byte for byte).
    const SOLICIT_BIN: &[u8] = include_bytes!("../../tests/fixtures/dhcp6/solicit.bin");
    const ADVERTISE_BIN: &[u8] = include_bytes!("../../tests/fixtures/dhcp6/advertise.bin");
    const REQUEST_BIN: &[u8] = include_bytes!("../../tests/fixtures/dhcp6/request.bin");
    const REPLY_BIN: &[u8] = include_bytes!("../../tests/fixtures/dhcp6/reply.bin");
    const IAID: u32 = 0x0012_3456;
    /// dnsmasq's DUID-LLT: type 1, hardware 1, time 0x32a230f8, its MAC.
    const SERVER_DUID: [u8; 14] = [
        0, 1, 0, 1, 0x32, 0xa2, 0x30, 0xf8, 0x0a, 0xce, 0x28, 0xa3, 0x6a, 0xd5,
    ];
    const ROOT: &str = "iscsi:[fd00:198:18::1]::3260:1:iqn.2026-11.test:root";

    fn lease_addr() -> IaAddr {
        IaAddr {
            addr: "fd00:198:18::100".parse().unwrap(),
            preferred: 3600,
            valid: 3600,
            status: None,
        }
    }

    #[test]
    fn dnsmasq_exchange_byte_exact() {
        let duid = duid_ll(MAC);
        assert_eq!(solicit([0xab, 0xcd, 0xef], &duid, IAID, 0), SOLICIT_BIN);
        // ADVERTISE: 02 abcdef | CLIENTID (ours) | SERVERID (DUID-LLT) |
        // IA_NA {IAID, T1 1800, T2 3150, IAADDR {::100, 3600, 3600}} |
        // STATUS 0 "success" | PREFERENCE 0 | 59 root path | 23 DNS.
        let adv = decode(ADVERTISE_BIN).unwrap();
        assert_eq!((adv.msg_type, adv.xid), (ADVERTISE, [0xab, 0xcd, 0xef]));
        assert_eq!(adv.client_id.as_deref(), Some(&duid[..]));
        assert_eq!(adv.server_id.as_deref(), Some(&SERVER_DUID[..]));
        assert_eq!(adv.preference, Some(0));
        assert_eq!(adv.ia_na.len(), 1);
        let ia = &adv.ia_na[0];
        assert_eq!((ia.iaid, ia.t1, ia.t2), (IAID, 1800, 3150));
        assert_eq!(ia.addrs, [lease_addr()]);
        assert_eq!(ia.status, None);
        assert_eq!(
            adv.status,
            Some(Status {
                code: 0,
                message: "success".into()
            })
        );
        assert_eq!(adv.bootfile_url.as_deref(), Some(ROOT));
        assert_eq!(adv.dns, ["fd00:198:18::1".parse::<Ipv6Addr>().unwrap()]);
        assert!(adv.other.is_empty() && !adv.rapid_commit);
        let (server, addr) = offered(&adv, [0xab, 0xcd, 0xef], &duid, IAID).unwrap();
        assert_eq!(
            (server.as_slice(), &addr),
            (&SERVER_DUID[..], &lease_addr())
        );
        // Our REQUEST copies the server id and the address; ELAPSED 1.00 s.
        assert_eq!(
            request([0x12, 0x34, 0x56], &duid, &server, IAID, &addr, 100),
            REQUEST_BIN
        );
        let rep = decode(REPLY_BIN).unwrap();
        assert_eq!((rep.msg_type, rep.xid), (REPLY, [0x12, 0x34, 0x56]));
        assert_eq!(rep.bootfile_url.as_deref(), Some(ROOT));
        assert_eq!(
            offered(&rep, [0x12, 0x34, 0x56], &duid, IAID).map(|(_, a)| a),
            Ok(lease_addr())
        );
        // Every prefix of a real message decodes or fails cleanly.
        for m in [ADVERTISE_BIN, REPLY_BIN] {
            for n in 0..m.len() {
                let _ = decode(&m[..n]);
            }
        }
    }

    #[test]
    fn truncated_and_odd_options_are_errors_not_panics() {
        let d = duid_ll(MAC);
        let m = solicit([1, 2, 3], &d, 1, 0);
        for n in 0..m.len() {
            let _ = decode(&m[..n]);
        }
        assert_eq!(decode(&[2, 0]), Err(DecodeError::Short { len: 2 }));
        assert_eq!(
            decode(&[2, 0, 0, 0, 0, 1, 0, 9, 1]),
            Err(DecodeError::Truncated { code: 1, at: 4 })
        );
        assert_eq!(
            decode(&[2, 0, 0, 0, 0, 7, 0, 2, 1, 1]),
            Err(DecodeError::BadLength { code: 7, len: 2 })
        );
        assert_eq!(
            decode(&[2, 0, 0, 0, 0, 23, 0, 3, 1, 1, 1])
                .unwrap_err()
                .to_string(),
            "DHCPv6 option 23 has length 3, not the length its type has"
        );
        assert_eq!(
            decode(&[2, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 1]),
            Err(DecodeError::BadLength { code: 3, len: 4 })
        );
    }

    #[test]
    fn offered_checks_ids_status_and_lifetimes() {
        let d = duid_ll(MAC);
        let addr = IaAddr {
            addr: "fd00:198:18::100".parse().unwrap(),
            preferred: 1800,
            valid: 3600,
            status: None,
        };
        let ok = Message {
            msg_type: ADVERTISE,
            xid: [1, 2, 3],
            client_id: Some(d.clone()),
            server_id: Some(vec![0, 1]),
            ia_na: vec![IaNa {
                iaid: 9,
                t1: 0,
                t2: 0,
                addrs: vec![addr.clone()],
                status: None,
            }],
            ..Message::default()
        };
        assert_eq!(
            offered(&ok, [1, 2, 3], &d, 9),
            Ok((vec![0, 1], addr.clone()))
        );
        assert_eq!(offered(&ok, [1, 2, 4], &d, 9), Err(Unusable::NotOurs));
        assert!(matches!(
            offered(&ok, [1, 2, 3], &d, 8),
            Err(Unusable::NoAddress(None))
        ));
        let mut none = ok.clone();
        none.ia_na[0].addrs.clear();
        none.ia_na[0].status = Some(Status {
            code: STATUS_NO_ADDRS_AVAIL,
            message: "no\naddr".into(),
        });
        let e = offered(&none, [1, 2, 3], &d, 9).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no address in its IA_NA: status 2 (no\\naddr)"
        );
        let mut dead = ok.clone();
        dead.ia_na[0].addrs[0].valid = 0;
        assert!(offered(&dead, [1, 2, 3], &d, 9).is_err());
        let mut anon = ok;
        anon.server_id = None;
        assert_eq!(offered(&anon, [1, 2, 3], &d, 9), Err(Unusable::NoServerId));
    }
}
