//! Hostile peers against netboot-configd's rxkad server and against our rxkad client (issue
//! 13), on loopback.
//!
//! Layout: netboot-configd runs as a child process on 127.0.0.1 (ephemeral port, read from
//! its `listening on` line) with `--rxkad-keys K` (K from `netboot-configd key new --kvno 3`)
//! and a temp directory holding the configs of two machines, each with a CHAP secret. The
//! test's own "raw" rxkad client speaks the protocol packet by packet from the pure API
//! (`netboot::rxkad`, `netboot::rxrpc::wire`), so it can send what no honest client sends:
//!
//! | test | what the peer does | expected from configd |
//! |---|---|---|
//! | `raw_client_gets_the_config` | an honest exchange at auth and at encrypt (the control: the raw client is right) | the config; at encrypt the CHAP secret is not in any reply datagram |
//! | `bad_tokens_are_refused` | ticket sealed with another key (same kvno); unknown kvno; expired; not yet valid; for another service; for another machine | a connection/call ABORT with the rxkad code, no DATA |
//! | `tampered_and_unchecked_packets` | a byte flipped in the sealed request; a bad header cksum; cksum 0 | ABORT RXKADSEALEDINCON, no DATA |
//! | `replayed_call_gets_nothing` | our client's datagrams recorded through a UDP relay, replayed from a new socket | a new CHALLENGE, the old RESPONSE fails (RXKADOUTOFSEQUENCE), no DATA |
//! | `response_without_challenge_and_garbage` | a RESPONSE on a connection never challenged; a garbage RESPONSE | nothing / an rxkad ABORT; never DATA; an honest call afterwards still works |
//! | `level_below_minimum_and_plain` | a RESPONSE at level clear when configd wants encrypt; a plain (index 0) call for a config with a CHAP secret | RXKADLEVELFAIL; the plain call refused |
//! | `rolled_keys_take_both_kvnos` | tokens of kvno 3 and 4 with both in the key file; kvno 3 after it is removed | served, served; RXKADUNKNOWNKEY |
//! | `multi_packet_reply_at_encrypt` | a config of 5 sealed DATA packets | our client and the raw one reassemble it; no secret on the wire |
//! | `client_rejects_tampered_replies` | a relay between our userspace client and configd flips a byte of each reply DATA (payload, then the cksum) | the client returns an error, never the data |
//!
//! No root needed.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::config::proto::{self, Identity};
use netboot::rxkad::code;
use netboot::rxkad::files::{self, Holder, Token};
use netboot::rxkad::handshake::{build_response, Challenge, ResponseFields};
use netboot::rxkad::packet::ConnSecurity;
use netboot::rxkad::ticket::{ServerKey, Ticket};
use netboot::rxkad::{code_name, Level};
use netboot::rxrpc::call::CallError;
use netboot::rxrpc::udp::UdpTransport;
use netboot::rxrpc::wire::{flags, ptype, Ack, Body, Header, Packet};
use netboot::rxrpc::RxTransport;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::configd::Configd;

use support::configd::run_tool;
/// configd's abort for a plain call when `--min-level` is above none (proto.rs).
const NBCONF_SECURITY_REQUIRED: i32 = 9;
const MAC: &str = "52:54:00:12:34:56";
const OTHER_MAC: &str = "52:54:00:99:99:99";
const SECRET: &str = "chapsecret-hostile-4711";
const OTHER_SECRET: &str = "chapsecret-other-0815";
/// A machine whose config holds no secret: configd serves it at any level.
const OPEN_MAC: &str = "52:54:00:00:00:01";
const OPEN_INITIATOR: &str = "iqn.2026-11.test:open-machine";

// ---------------------------------------------------------------------------------------------
// configd

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn random8() -> [u8; 8] {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut b,
    )
    .expect("urandom");
    b
}

/// A work directory with a server key (kvno 3), another key with the same kvno, a key of
/// kvno 9, and configd's config directory.
struct Setup {
    dir: PathBuf,
    key: ServerKey,
    other: ServerKey,
    kvno9: ServerKey,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("netboot-kadh-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf")).expect("mkdir");
        let p = |n: &str| dir.join(n).display().to_string();
        run_tool(&["key", "new", "--kvno", "3", "--out", &p("server.keys")]);
        run_tool(&["key", "new", "--kvno", "3", "--out", &p("other.keys")]);
        run_tool(&["key", "new", "--kvno", "9", "--out", &p("kvno9.keys")]);
        let read = |n: &str| {
            let text = std::fs::read_to_string(dir.join(n)).expect("key file");
            let mut v = files::parse_key_file(&text, n).expect("key file parses");
            assert_eq!(v.len(), 1, "{n}");
            v.remove(0)
        };
        let (key, other, kvno9) = (read("server.keys"), read("other.keys"), read("kvno9.keys"));
        assert_ne!(key.key, other.key, "two random keys");
        for (mac, secret) in [(MAC, SECRET), (OTHER_MAC, OTHER_SECRET)] {
            let cfg = serde_json::json!({
                "version": 1,
                "paths": [{ "server": "192.0.2.1", "lun": 1, "target": "iqn.2026-11.test:root",
                            "chap": { "username": "chapuser", "password": secret } }],
                "initiator": format!("iqn.2026-11.test:{}", mac.replace(':', "")),
            });
            let file = format!("mac-{}.json", mac.replace(':', "-"));
            std::fs::write(dir.join("conf").join(file), cfg.to_string()).expect("config");
        }
        let open = serde_json::json!({ "version": 1, "initiator": OPEN_INITIATOR });
        let file = format!("mac-{}.json", OPEN_MAC.replace(':', "-"));
        std::fs::write(dir.join("conf").join(file), open.to_string()).expect("config");
        Setup {
            dir,
            key,
            other,
            kvno9,
        }
    }

    fn configd(&self, extra: &[&str]) -> Configd {
        let keys = self.dir.join("server.keys").display().to_string();
        let mut args = vec!["--rxkad-keys", keys.as_str()];
        args.extend_from_slice(extra);
        Configd::start(&self.dir.join("conf"), &args)
    }

    /// A token for `mac` minted by `netboot-configd token` (the real tool).
    fn tool_token(&self, mac: &str) -> Token {
        let out = self.dir.join(format!("token-{mac}"));
        let keys = self.dir.join("server.keys").display().to_string();
        run_tool(&[
            "token",
            "--keys",
            &keys,
            "--machine",
            mac,
            "--lifetime",
            "1h",
            "--force",
            "--out",
            &out.display().to_string(),
        ]);
        let text = std::fs::read_to_string(&out).expect("token");
        Token::parse(&text, "token").expect("token parses")
    }
}

impl Setup {
    /// A token of key version `kvno` from the key file (`token --kvno`).
    fn tool_token_kvno(&self, mac: &str, kvno: u32) -> Token {
        let out = self.dir.join(format!("token-{mac}-{kvno}"));
        let keys = self.dir.join("server.keys").display().to_string();
        run_tool(&[
            "token",
            "--keys",
            &keys,
            "--machine",
            mac,
            "--lifetime",
            "1h",
            "--kvno",
            &kvno.to_string(),
            "--force",
            "--out",
            &out.display().to_string(),
        ]);
        let text = std::fs::read_to_string(&out).expect("token");
        Token::parse(&text, "token").expect("token parses")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A token with a hand-made ticket: any name, service, times, key.
fn token_with(key: &ServerKey, instance: &str, service: &str, start: u32, life: u8) -> Token {
    let ks = netboot::rxkad::ticket::fix_parity(random8());
    let t = Ticket {
        name: files::TOKEN_NAME.into(),
        instance: instance.into(),
        realm: String::new(),
        host: [0; 4],
        session_key: ks,
        start,
        life,
        service: service.into(),
        service_instance: String::new(),
    };
    let ticket = t.seal(key).expect("seal");
    Token {
        service: service.into(),
        name: t.name.clone(),
        instance: instance.into(),
        realm: String::new(),
        kvno: key.kvno,
        start,
        expiry: t.end(),
        session_key: ks,
        ticket,
    }
}

fn machine(mac: &str) -> String {
    Holder::Machine(mac.into()).instance()
}

fn request(mac: &str) -> Vec<u8> {
    proto::encode_get_config(&Identity {
        mac: mac.into(),
        iqn: String::new(),
        hostname: String::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// the raw rxkad client

/// What came back on one connection.
#[derive(Debug, Default)]
struct Outcome {
    challenges: Vec<Challenge>,
    /// (callNumber, code) of every ABORT.
    aborts: Vec<(u32, i32)>,
    /// Reply DATA packets seen (sealed, as on the wire).
    data: Vec<Vec<u8>>,
    /// The reply, unsealed and reassembled, if its last packet came.
    reply: Option<Vec<u8>>,
    /// Every datagram from the server, raw.
    raw: Vec<Vec<u8>>,
}

impl Outcome {
    fn abort_codes(&self) -> Vec<String> {
        self.aborts
            .iter()
            .map(|(c, a)| format!("call {c}: {a} {}", code_name(*a).unwrap_or("")))
            .collect()
    }

    fn assert_refused(&self, what: &str, want: Option<i32>) {
        assert!(
            self.data.is_empty() && self.reply.is_none(),
            "{what}: configd sent DATA: {self:?}"
        );
        assert!(!self.aborts.is_empty(), "{what}: no ABORT: {self:?}");
        if let Some(w) = want {
            assert!(
                self.aborts.iter().any(|(_, c)| *c == w),
                "{what}: want abort {w} {}, got {:?}",
                code_name(w).unwrap_or(""),
                self.abort_codes()
            );
        }
        for r in &self.raw {
            assert!(
                !contains(r, SECRET.as_bytes()) && !contains(r, OTHER_SECRET.as_bytes()),
                "{what}: a CHAP secret in a datagram from configd"
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One client connection (channel 0) speaking rxkad packet by packet.
struct Raw {
    sock: UdpSocket,
    server: SocketAddr,
    epoch: u32,
    cid: u32,
    serial: u32,
    token: Token,
    level: Level,
    sec: ConnSecurity,
}

impl Raw {
    fn new(server: SocketAddr, token: Token, level: Level) -> Raw {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let r = random8();
        let epoch = (u32::from_be_bytes([r[0], r[1], r[2], r[3]]) | 0x8000_0000) & !0x4000_0000;
        let cid = u32::from_be_bytes([r[4], r[5], r[6], r[7]]) & 0x3fff_fffc;
        let sec = ConnSecurity::new(token.session_key, epoch, cid, level);
        Raw {
            sock,
            server,
            epoch,
            cid,
            serial: 0,
            token,
            level,
            sec,
        }
    }

    fn header(&mut self, ptype: u8, call: u32, seq: u32, flags: u8, cksum: u16) -> Header {
        self.serial += 1;
        Header {
            epoch: self.epoch,
            cid: self.cid,
            call,
            seq,
            serial: self.serial,
            ptype,
            flags,
            user_status: 0,
            security_index: netboot::rxkad::SECURITY_INDEX,
            cksum,
            service_id: proto::SERVICE_ID,
        }
    }

    /// The one-packet request of `call`, sealed at the connection's level.
    fn data(&mut self, call: u32, body: &[u8]) -> Vec<u8> {
        let cksum = self.sec.header_cksum(call, self.cid, 1);
        let h = self.header(
            ptype::DATA,
            call,
            1,
            flags::CLIENT_INITIATED | flags::LAST_PACKET,
            cksum,
        );
        let payload = self.sec.seal(call, 1, body);
        Packet {
            header: h,
            body: Body::Data(payload),
        }
        .encode()
        .expect("encode")
    }

    /// The RESPONSE to `ch` for `call` on channel 0, at `level`, nonce + `nonce_delta`.
    fn response(&mut self, ch: &Challenge, call: u32, level: Level, nonce_delta: u32) -> Vec<u8> {
        let f = ResponseFields {
            epoch: self.epoch,
            cid: self.cid,
            call_ids: [call, 0, 0, 0],
            inc_nonce: ch.nonce.wrapping_add(nonce_delta),
            level: level.as_u32(),
        };
        let body = build_response(
            &f,
            self.token.session_key,
            self.token.kvno,
            &self.token.ticket,
        );
        self.response_packet(body)
    }

    fn response_packet(&mut self, body: Vec<u8>) -> Vec<u8> {
        let h = self.header(ptype::RESPONSE, 0, 0, flags::CLIENT_INITIATED, 0);
        Packet {
            header: h,
            body: Body::Other(body),
        }
        .encode()
        .expect("encode")
    }

    fn send(&self, b: &[u8]) {
        self.sock.send_to(b, self.server).expect("send");
    }

    /// Read packets from the server for up to `wait`, stopping early once `done` says so.
    fn read(&mut self, out: &mut Outcome, wait: Duration, done: impl Fn(&Outcome) -> bool) {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        let mut parts: Vec<(u32, Vec<u8>)> = Vec::new();
        while !done(out) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let b = buf[..n].to_vec();
            out.raw.push(b.clone());
            let Ok(p) = Packet::decode(&b) else { continue };
            match (p.header.ptype, &p.body) {
                (ptype::CHALLENGE, Body::Other(body)) => {
                    if let Ok(c) = Challenge::decode(body) {
                        out.challenges.push(c);
                    }
                }
                (_, Body::Abort { code, .. }) => out.aborts.push((p.header.call, *code)),
                (ptype::DATA, Body::Data(d)) => {
                    out.data.push(d.clone());
                    let h = p.header;
                    let cksum = self.sec.header_cksum(h.call, self.cid, h.seq);
                    assert_eq!(h.cksum, cksum, "configd's reply DATA header cksum");
                    let plain = self
                        .sec
                        .unseal(h.call, h.seq, d)
                        .unwrap_or_else(|e| panic!("configd's reply does not unseal: {e}"));
                    if !parts.iter().any(|(s, _)| *s == h.seq) {
                        parts.push((h.seq, plain));
                    }
                    if h.flags & flags::LAST_PACKET != 0 {
                        parts.sort_by_key(|(s, _)| *s);
                        if parts.len() == h.seq as usize {
                            out.reply = Some(parts.iter().flat_map(|(_, d)| d.clone()).collect());
                            let ack = Ack::new(h.seq + 1, h.seq, h.serial, 9);
                            let ah = self.header(ptype::ACK, h.call, 0, flags::CLIENT_INITIATED, 0);
                            if let Ok(b) = (Packet {
                                header: ah,
                                body: Body::Ack(ack),
                            })
                            .encode()
                            {
                                self.send(&b);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Request → CHALLENGE → RESPONSE (built by `respond`) → reply or abort.
    fn exchange(
        &mut self,
        call: u32,
        datagram: Vec<u8>,
        respond: impl FnOnce(&mut Raw, &Challenge) -> Vec<u8>,
    ) -> Outcome {
        let mut out = Outcome::default();
        self.send(&datagram);
        self.read(&mut out, Duration::from_secs(4), |o| {
            !o.challenges.is_empty() || !o.aborts.is_empty()
        });
        let Some(ch) = out.challenges.first().cloned() else {
            return out;
        };
        assert!(ch.min_level <= 2, "challenge min_level {}", ch.min_level);
        let resp = respond(self, &ch);
        self.send(&resp);
        self.read(&mut out, Duration::from_secs(4), |o| {
            o.reply.is_some() || !o.aborts.is_empty()
        });
        let _ = call;
        out
    }

    /// An honest call for `mac`.
    fn get(&mut self, call: u32, mac: &str) -> Outcome {
        let level = self.level;
        let d = self.data(call, &request(mac));
        self.exchange(call, d, |r, ch| r.response(ch, call, level, 1))
    }
}

fn config_of(out: &Outcome, what: &str) -> String {
    let reply = out
        .reply
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no reply: {out:?} {:?}", out.abort_codes()));
    let json = proto::decode_reply(reply).expect("XDR opaque");
    String::from_utf8(json.to_vec()).expect("utf-8")
}

// ---------------------------------------------------------------------------------------------
// tests against configd

/// An honest exchange with the raw client: the control that makes the refusals below mean
/// something. Level encrypt for the machine with a CHAP secret (never in clear on the
/// wire), levels clear/auth/encrypt for the machine without one; `auth` for a secret is
/// refused by configd's policy (NBCONF_SECRETS_REFUSED: at level 1 the payload after its
/// first 8 bytes is not encrypted).
#[test]
fn raw_client_gets_the_config() {
    let s = Setup::new("ok");
    let d = s.configd(&[]);
    let cases = [
        (MAC, Level::Encrypt, SECRET),
        (OPEN_MAC, Level::Encrypt, OPEN_INITIATOR),
        (OPEN_MAC, Level::Auth, OPEN_INITIATOR),
        (OPEN_MAC, Level::Clear, OPEN_INITIATOR),
    ];
    for (mac, level, want) in cases {
        let what = format!("{mac} at {level}");
        let mut raw = Raw::new(d.addr, s.tool_token(mac), level);
        let out = raw.get(1, mac);
        let json = config_of(&out, &what);
        assert!(json.contains(want), "{what}: {json}");
        assert!(!json.contains("serve_secrets_insecure"), "{what}: {json}");
        assert_eq!(out.challenges.len(), 1, "{what}: {out:?}");
        if level == Level::Encrypt {
            for r in &out.raw {
                assert!(
                    !contains(r, want.as_bytes()),
                    "{what}: {want} in clear at encrypt"
                );
            }
        } else {
            assert!(
                out.raw.iter().any(|r| contains(r, want.as_bytes())),
                "{what}: below encrypt the payload is readable (rxkad.md §3)"
            );
        }
        // A second call on the authenticated connection: no new CHALLENGE.
        let d2 = raw.data(2, &request(mac));
        let mut out2 = Outcome::default();
        raw.send(&d2);
        raw.read(&mut out2, Duration::from_secs(4), |o| {
            o.reply.is_some() || !o.aborts.is_empty()
        });
        assert!(
            out2.challenges.is_empty(),
            "{what}: re-challenged: {out2:?}"
        );
        assert!(config_of(&out2, &format!("{what}, second call")).contains(want));
    }
    // A CHAP secret at auth: refused by the policy, after a good handshake.
    let mut raw = Raw::new(d.addr, s.tool_token(MAC), Level::Auth);
    raw.get(1, MAC)
        .assert_refused("secret at auth", Some(proto::NBCONF_SECRETS_REFUSED));
    // A fleet token is for any machine (a fleet ticket names no MAC).
    let fleet = token_with(&s.key, "fleet-rack1", files::SERVICE, now() - 60, 12);
    let mut raw = Raw::new(d.addr, fleet, Level::Encrypt);
    let out = raw.get(1, OTHER_MAC);
    assert!(config_of(&out, "fleet token").contains(OTHER_SECRET));
    drop(d);
}

#[test]
fn bad_tokens_are_refused() {
    let s = Setup::new("tokens");
    let d = s.configd(&[]);
    let t = now();
    let me = machine(MAC);
    let cases: Vec<(&str, Token, Option<i32>)> = vec![
        (
            "ticket sealed with another key, same kvno",
            token_with(&s.other, &me, files::SERVICE, t - 60, 12),
            Some(code::RXKADBADTICKET),
        ),
        (
            "unknown kvno 9",
            token_with(&s.kvno9, &me, files::SERVICE, t - 60, 12),
            Some(code::RXKADUNKNOWNKEY),
        ),
        (
            "expired (start 3 days ago, 1 h)",
            token_with(&s.key, &me, files::SERVICE, t - 3 * 86_400, 12),
            Some(code::RXKADEXPIRED),
        ),
        (
            "not yet valid (start in 2 hours)",
            token_with(&s.key, &me, files::SERVICE, t + 7200, 12),
            Some(code::RXKADNOAUTH),
        ),
        (
            "for another service (afs)",
            token_with(&s.key, &me, "afs", t - 60, 12),
            Some(code::RXKADBADTICKET),
        ),
        (
            "for another machine",
            token_with(&s.key, &machine(OTHER_MAC), files::SERVICE, t - 60, 12),
            Some(proto::NBCONF_WRONG_MACHINE),
        ),
        (
            "not a netboot principal (afs, as -localauth mints)",
            {
                let mut tk = token_with(&s.key, "", files::SERVICE, t - 60, 12);
                let tt = Ticket {
                    name: "afs".into(),
                    instance: String::new(),
                    realm: String::new(),
                    host: [0; 4],
                    session_key: tk.session_key,
                    start: t - 60,
                    life: 12,
                    service: files::SERVICE.into(),
                    service_instance: String::new(),
                };
                tk.ticket = tt.seal(&s.key).expect("seal");
                tk
            },
            Some(proto::NBCONF_NOT_NETBOOT_TOKEN),
        ),
    ];
    for (what, token, want) in cases {
        let mut raw = Raw::new(d.addr, token, Level::Encrypt);
        let out = raw.get(1, MAC);
        eprintln!("{what}: aborts {:?}", out.abort_codes());
        out.assert_refused(what, want);
    }
    // The same machine's own token still works afterwards.
    let mut raw = Raw::new(d.addr, s.tool_token(MAC), Level::Encrypt);
    assert!(config_of(&raw.get(1, MAC), "after the bad tokens").contains(SECRET));
    for l in d.logs() {
        assert!(!l.contains(SECRET), "CHAP secret in configd's log: {l}");
    }
}

#[test]
fn tampered_and_unchecked_packets() {
    let s = Setup::new("tamper");
    let d = s.configd(&[]);
    let token = s.tool_token(MAC);
    // A byte flipped in the first sealed block (the security header: check word, length)
    // is what rxkad itself detects (rxkad.md §3); a flip further on garbles that PCBC block
    // and every later one (rxkad has no MAC over the rest), so the request no longer decodes:
    // refused too, by the GetConfig decoder or the store, never answered with DATA.
    for (what, offset, want) in [
        (
            "security header byte 1",
            28 + 1,
            Some(code::RXKADSEALEDINCON),
        ),
        (
            "security header byte 6",
            28 + 6,
            Some(code::RXKADSEALEDINCON),
        ),
        ("sealed payload byte 20", 28 + 20, None),
    ] {
        let mut raw = Raw::new(d.addr, token.clone(), Level::Encrypt);
        let mut dg = raw.data(1, &request(MAC));
        dg[offset] ^= 0x40;
        let out = raw.exchange(1, dg, |r, ch| r.response(ch, 1, Level::Encrypt, 1));
        eprintln!("flipped {what}: aborts {:?}", out.abort_codes());
        out.assert_refused(what, want);
    }
    // At level auth: a flipped byte in the sealed word.
    let mut raw = Raw::new(d.addr, s.tool_token(OPEN_MAC), Level::Auth);
    let mut dg = raw.data(1, &request(OPEN_MAC));
    dg[28 + 2] ^= 0x01;
    let out = raw.exchange(1, dg, |r, ch| r.response(ch, 1, Level::Auth, 1));
    out.assert_refused("auth sealed word", Some(code::RXKADSEALEDINCON));
    // A wrong header cksum, and cksum 0.
    for (what, cksum) in [("bad cksum", None), ("cksum 0", Some(0u16))] {
        let mut raw = Raw::new(d.addr, token.clone(), Level::Encrypt);
        let mut dg = raw.data(1, &request(MAC));
        let good = u16::from_be_bytes([dg[24], dg[25]]);
        let bad = cksum.unwrap_or(good ^ 0x5a5a);
        dg[24..26].copy_from_slice(&bad.to_be_bytes());
        let out = raw.exchange(1, dg, |r, ch| r.response(ch, 1, Level::Encrypt, 1));
        eprintln!("{what}: aborts {:?}", out.abort_codes());
        out.assert_refused(what, Some(code::RXKADSEALEDINCON));
    }
    // A RESPONSE whose inc_nonce is wrong.
    let mut raw = Raw::new(d.addr, token, Level::Encrypt);
    let dg = raw.data(1, &request(MAC));
    let out = raw.exchange(1, dg, |r, ch| r.response(ch, 1, Level::Encrypt, 2));
    out.assert_refused("inc_nonce + 2", Some(code::RXKADOUTOFSEQUENCE));
}

// ---------------------------------------------------------------------------------------------
// a UDP relay: records both directions, may change what passes

type Tamper = Box<dyn FnMut(bool, &mut Vec<u8>) + Send>;
/// (to_server, datagram) in the order seen.
type Seen = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

struct Relay {
    addr: SocketAddr,
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(server: SocketAddr, mut tamper: Tamper) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let back = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = front.local_addr().expect("addr");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(5)))
                .expect("timeout");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut client: Option<SocketAddr> = None;
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    client = Some(from);
                    let mut b = buf[..n].to_vec();
                    seen2.lock().unwrap().push((true, b.clone()));
                    tamper(true, &mut b);
                    let _ = back.send_to(&b, server);
                }
                if let Ok((n, _)) = back.recv_from(&mut buf) {
                    let mut b = buf[..n].to_vec();
                    seen2.lock().unwrap().push((false, b.clone()));
                    tamper(false, &mut b);
                    if let Some(c) = client {
                        let _ = front.send_to(&b, c);
                    }
                }
            }
        });
        Relay {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<(bool, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ptype_of(b: &[u8]) -> u8 {
    b.get(20).copied().unwrap_or(0)
}

fn server(addr: SocketAddr) -> Vec<netboot::plan::ConfigServer> {
    vec![netboot::plan::ConfigServer {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    }]
}

/// Our userspace client with `token` at `level` (the agent's fallback client).
fn client(token: Token, level: Level) -> UdpTransport {
    UdpTransport::new(proto::MAX_REPLY + 8).secured(token, level)
}

#[test]
fn replayed_call_gets_nothing() {
    let s = Setup::new("replay");
    let d = s.configd(&[]);
    let relay = Relay::start(d.addr, Box::new(|_, _| {}));
    let mut c = client(s.tool_token(MAC), Level::Encrypt);
    let reply = c
        .call(
            relay.addr,
            proto::SERVICE_ID,
            &request(MAC),
            Duration::from_secs(5),
        )
        .expect("the recorded call works");
    let json = proto::decode_reply(&reply).expect("XDR");
    assert!(contains(json, SECRET.as_bytes()));
    std::thread::sleep(Duration::from_millis(200));
    let seen = relay.seen();
    drop(relay);
    let sent: Vec<Vec<u8>> = seen
        .iter()
        .filter(|(up, _)| *up)
        .map(|(_, b)| b.clone())
        .collect();
    let types: Vec<u8> = sent.iter().map(|b| ptype_of(b)).collect();
    assert!(
        types.contains(&ptype::DATA) && types.contains(&ptype::RESPONSE),
        "{types:?}"
    );
    for (_, b) in &seen {
        assert!(
            !contains(b, SECRET.as_bytes()),
            "CHAP secret on the wire at encrypt"
        );
    }
    // Replay every client datagram, in order, from a new socket (a new peer: a new
    // connection on the server), with the same gaps a client would leave.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut back: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut drain = |until: Instant, back: &mut Vec<Vec<u8>>| {
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                back.push(buf[..n].to_vec());
            }
        }
    };
    for b in &sent {
        sock.send_to(b, d.addr).expect("send");
        drain(Instant::now() + Duration::from_millis(300), &mut back);
    }
    drain(Instant::now() + Duration::from_secs(2), &mut back);
    let types: Vec<u8> = back.iter().map(|b| ptype_of(b)).collect();
    eprintln!("replay: server sent types {types:?}");
    assert!(
        !types.contains(&ptype::DATA),
        "configd sent DATA to a replay: {types:?}"
    );
    assert!(
        types.contains(&ptype::CHALLENGE),
        "a fresh CHALLENGE: {types:?}"
    );
    let aborts: Vec<i32> = back
        .iter()
        .filter_map(|b| match Packet::decode(b).ok()?.body {
            Body::Abort { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert!(
        aborts.contains(&code::RXKADOUTOFSEQUENCE),
        "the replayed RESPONSE fails the new nonce: {aborts:?}"
    );
    for b in &back {
        assert!(!contains(b, SECRET.as_bytes()));
    }
}

#[test]
fn response_without_challenge_and_garbage() {
    let s = Setup::new("resp");
    let d = s.configd(&[]);
    let token = s.tool_token(MAC);
    // A RESPONSE on a connection configd never challenged (a made-up nonce), then the
    // request: the connection must still be unauthenticated (a CHALLENGE comes).
    let mut raw = Raw::new(d.addr, token.clone(), Level::Encrypt);
    let fake = Challenge {
        nonce: 0x1234_5678,
        min_level: 0,
    };
    let resp = raw.response(&fake, 1, Level::Encrypt, 1);
    raw.send(&resp);
    let mut out = Outcome::default();
    raw.read(&mut out, Duration::from_millis(1500), |_| false);
    assert!(
        out.data.is_empty(),
        "DATA after an unsolicited RESPONSE: {out:?}"
    );
    let after = raw.get(1, MAC);
    assert_eq!(
        after.challenges.len(),
        1,
        "still unauthenticated: {after:?}"
    );
    assert!(config_of(&after, "after an unsolicited RESPONSE").contains(SECRET));

    // Garbage RESPONSE bodies after a real CHALLENGE.
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short", vec![0, 0, 0, 2, 0, 0, 0]),
        ("random 56 + 32", random_bytes(88)),
        ("version 9", {
            let mut b = vec![0u8; 88];
            b[3] = 9;
            b[55] = 32;
            b
        }),
        ("ticket length 5000", {
            let mut b = vec![0u8; 56];
            b[3] = 2;
            b[50..52].copy_from_slice(&[0, 3]);
            b[52..56].copy_from_slice(&5000u32.to_be_bytes());
            b
        }),
    ];
    for (what, body) in garbage {
        let mut raw = Raw::new(d.addr, token.clone(), Level::Encrypt);
        let dg = raw.data(1, &request(MAC));
        let out = raw.exchange(1, dg, |r, _| r.response_packet(body));
        eprintln!("garbage RESPONSE {what}: aborts {:?}", out.abort_codes());
        out.assert_refused(what, None);
        assert!(
            out.aborts.iter().any(|(_, c)| code_name(*c).is_some()),
            "{what}: an rxkad code: {:?}",
            out.abort_codes()
        );
    }
    let mut raw = Raw::new(d.addr, token, Level::Encrypt);
    assert!(config_of(&raw.get(1, MAC), "after garbage").contains(SECRET));
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n.div_ceil(8)).flat_map(|_| random8()).take(n).collect()
}

#[test]
fn level_below_minimum_and_plain() {
    let s = Setup::new("level");
    let d = s.configd(&["--min-level", "encrypt"]);
    let token = s.tool_token(MAC);
    for below in [Level::Clear, Level::Auth] {
        let mut raw = Raw::new(d.addr, token.clone(), below);
        let dg = raw.data(1, &request(MAC));
        let out = raw.exchange(1, dg, |r, ch| r.response(ch, 1, below, 1));
        eprintln!(
            "level {below} below encrypt: aborts {:?}",
            out.abort_codes()
        );
        out.assert_refused(&format!("level {below}"), Some(code::RXKADLEVELFAIL));
    }
    let mut raw = Raw::new(d.addr, token, Level::Encrypt);
    assert!(config_of(&raw.get(1, MAC), "at the minimum").contains(SECRET));
    // A plain call (index 0, the existing client) for a config with a CHAP secret.
    let mut plain = UdpTransport::new(proto::MAX_REPLY + 8);
    let r = plain.call(
        d.addr,
        proto::SERVICE_ID,
        &request(MAC),
        Duration::from_secs(3),
    );
    eprintln!("plain call: {r:?}");
    assert_eq!(
        r,
        Err(CallError::Aborted(NBCONF_SECURITY_REQUIRED)),
        "a plain call to a configd with --min-level encrypt is refused"
    );
}

// ---------------------------------------------------------------------------------------------
// our client against a tampering server

#[test]
fn client_rejects_tampered_replies() {
    let s = Setup::new("client");
    let d = s.configd(&[]);
    let who = Identity {
        mac: MAC.into(),
        iqn: String::new(),
        hostname: String::new(),
    };
    // Control: through an honest relay the client gets the config.
    let relay = Relay::start(d.addr, Box::new(|_, _| {}));
    let mut c = client(s.tool_token(MAC), Level::Encrypt);
    let ok =
        netboot::config::fetch_config(&mut c, &server(relay.addr), &who, Duration::from_secs(5), 0);
    assert!(ok.is_ok(), "honest relay: {ok:?}");
    drop(relay);
    // What the relay flips in each reply DATA: the header cksum and the first sealed block
    // (rxkad's own checks: the transport must fail), and at encrypt a later block (garbled by
    // PCBC: the fetch must fail, as the reply no longer decodes).
    // At auth: the machine without secrets (configd serves no secret below encrypt).
    let cases: Vec<(Level, &str, usize, bool)> = vec![
        (Level::Auth, "header cksum", 24, true),
        (Level::Auth, "sealed word", 28 + 2, true),
        (Level::Encrypt, "header cksum", 24, true),
        (Level::Encrypt, "security header", 28 + 1, true),
        (Level::Encrypt, "length word", 28 + 3, true),
        (Level::Encrypt, "a later block", 28 + 12, false),
    ];
    for (level, what, off, transport_fails) in cases {
        let mac = if level == Level::Encrypt {
            MAC
        } else {
            OPEN_MAC
        };
        let who = Identity {
            mac: mac.into(),
            iqn: String::new(),
            hostname: String::new(),
        };
        let relay = Relay::start(
            d.addr,
            Box::new(move |up, b: &mut Vec<u8>| {
                if !up && ptype_of(b) == ptype::DATA && b.len() > off {
                    b[off] ^= 0x10;
                }
            }),
        );
        let t0 = Instant::now();
        let r = client(s.tool_token(mac), level).call(
            relay.addr,
            proto::SERVICE_ID,
            &request(mac),
            Duration::from_secs(4),
        );
        let shown = r.as_ref().map(|v| format!("{} bytes", v.len()));
        eprintln!(
            "level {level}, tampered {what}: {shown:?} after {:?}",
            t0.elapsed()
        );
        if transport_fails {
            assert!(
                r.is_err(),
                "level {level}, tampered {what}: the client returned data"
            );
        } else {
            let mut c = client(s.tool_token(mac), level);
            let f = netboot::config::fetch_config(
                &mut c,
                &server(relay.addr),
                &who,
                Duration::from_secs(4),
                0,
            );
            eprintln!(
                "level {level}, tampered {what}: fetch {:?}",
                f.as_ref().err().map(ToString::to_string)
            );
            assert!(
                f.is_err(),
                "level {level}, tampered {what}: the fetch returned a config"
            );
        }
        let seen = relay.seen();
        assert!(
            seen.iter().any(|(up, b)| !up && ptype_of(b) == ptype::DATA),
            "the server did send reply DATA (so the tamper applied)"
        );
    }
}

/// Rolling keys: a key file with two kvnos (`key new --append`) takes tokens of both; a
/// token of a kvno removed from the file is refused with RXKADUNKNOWNKEY.
#[test]
fn rolled_keys_take_both_kvnos() {
    let s = Setup::new("roll");
    let keys = s.dir.join("server.keys").display().to_string();
    run_tool(&["key", "new", "--kvno", "4", "--append", "--out", &keys]);
    let text = std::fs::read_to_string(&keys).expect("key file");
    let both = files::parse_key_file(&text, "server.keys").expect("parses");
    assert_eq!(
        both.iter().map(|k| k.kvno).collect::<Vec<_>>(),
        vec![3, 4],
        "two kvnos"
    );
    let d = s.configd(&[]);
    for kvno in ["3", "4"] {
        let out = s
            .dir
            .join(format!("token-kvno{kvno}"))
            .display()
            .to_string();
        run_tool(&[
            "token",
            "--keys",
            &keys,
            "--machine",
            MAC,
            "--lifetime",
            "1h",
            "--kvno",
            kvno,
            "--out",
            &out,
        ]);
        let tk = Token::parse(&std::fs::read_to_string(&out).expect("token"), "t").expect("token");
        assert_eq!(tk.kvno.to_string(), kvno);
        let mut raw = Raw::new(d.addr, tk, Level::Encrypt);
        assert!(config_of(&raw.get(1, MAC), &format!("kvno {kvno}")).contains(SECRET));
    }
    drop(d);
    // The old key (kvno 3) dropped: its tokens stop working.
    let only4: Vec<ServerKey> = both.into_iter().filter(|k| k.kvno == 4).collect();
    std::fs::write(&keys, files::encode_key_file(&only4)).expect("rewrite key file");
    let d = s.configd(&[]);
    let mut raw = Raw::new(d.addr, s.tool_token_kvno(MAC, 4), Level::Encrypt);
    assert!(config_of(&raw.get(1, MAC), "kvno 4 after the roll").contains(SECRET));
    let old = token_with(&s.key, &machine(MAC), files::SERVICE, now() - 60, 12);
    let mut raw = Raw::new(d.addr, old, Level::Encrypt);
    raw.get(1, MAC)
        .assert_refused("kvno 3 after the roll", Some(code::RXKADUNKNOWNKEY));
}

/// A config of several packets at encrypt (configd seals each reply DATA, our client
/// unseals and reassembles them): both the agent's client and the raw one get it whole.
#[test]
fn multi_packet_reply_at_encrypt() {
    let s = Setup::new("big");
    let paths: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            serde_json::json!({ "server": format!("192.0.2.{}", i + 1), "lun": 1,
                "target": format!("iqn.2026-11.test:root-{i:03}-padding-padding-padding"),
                "chap": { "username": "chapuser", "password": SECRET } })
        })
        .collect();
    let cfg = serde_json::json!({ "version": 1, "paths": paths });
    let text = cfg.to_string();
    assert!(text.len() > 4000, "{} bytes: several packets", text.len());
    let file = format!("mac-{}.json", MAC.replace(':', "-"));
    std::fs::write(s.dir.join("conf").join(file), &text).expect("config");
    let d = s.configd(&[]);
    let relay = Relay::start(d.addr, Box::new(|_, _| {}));
    let reply = client(s.tool_token(MAC), Level::Encrypt)
        .call(
            relay.addr,
            proto::SERVICE_ID,
            &request(MAC),
            Duration::from_secs(5),
        )
        .expect("multi-packet secured reply");
    let json = proto::decode_reply(&reply).expect("XDR");
    assert!(contains(json, b"root-039-padding"), "the last path arrived");
    let seen = relay.seen();
    let data = seen
        .iter()
        .filter(|(up, b)| !up && ptype_of(b) == ptype::DATA)
        .count();
    assert!(data >= 3, "reply in {data} DATA packets");
    for (_, b) in &seen {
        assert!(!contains(b, SECRET.as_bytes()), "CHAP secret on the wire");
    }
    eprintln!(
        "{} bytes of config in {data} sealed DATA packets",
        json.len()
    );
    let mut raw = Raw::new(d.addr, s.tool_token(MAC), Level::Encrypt);
    assert!(config_of(&raw.get(1, MAC), "raw, several packets").contains("root-039-padding"));
}
