//! VM scenarios for the config fetch secured with rxkad (issue 13): the guest kernel's
//! AF_RXRPC rxkad client (an `rxrpc` key made from the token in the initramfs) against
//! netboot-configd's rxkad server, on Debian's 6.1 and 6.12; the agent's userspace rxkad
//! client where the initramfs has no rxrpc.ko; and what configd and the agent do with a plain
//! call or a bad token. Same rig as tests/vm.rs (`qemu/boot.sh`, helpers in tests/vm_support),
//! one VM at a time.
//!
//! ```text
//!   netns nbvm-<pid>-<random>
//!   ┌───────────────────────────────────────────────────────────────────────────────┐
//!   │ br0 198.18.0.1/24                                                             │
//!   │   198.18.0.1:3260  tgtd, CHAP chapuser / chapsecret1234                      │
//!   │   198.18.0.1:7260  netboot-configd --dir D --rxkad-keys D/../server.keys     │
//!   │                    (boot.sh --configd D --configd-args "--rxkad-keys …")     │
//!   │   dnsmasq on br0   lease 198.18.0.2/24, router 198.18.0.1 (boot.sh --dhcp)    │
//!   │   tcpdump -i br0   every packet of the boot (boot.sh --capture F              │
//!   │                    --capture-filter ""), SIGTERM at the end                   │
//!   │  └─ tap0 ── QEMU virtio-net-pci ── guest eth0                                 │
//!   └───────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The served config (`mac-52-54-00-12-34-56.json`) carries the root path with the CHAP
//! secret; the kernel command line only says where configd is. The token
//! (`netboot-configd token --keys server.keys --machine 52:54:00:12:34:56`) is
//! /etc/netboot/config.token in the initramfs; a second token minted from another server key
//! (same kvno) is /etc/netboot/wrong.token, one that expired (valid for an hour three days
//! ago, `token --start`) /etc/netboot/expired.token.
//!
//! | scenario | kernel | initramfs | command line | expected |
//! |---|---|---|---|---|
//! | a | 6.1  | token, rxrpc.ko | `netboot.config.security=encrypt` | root; capture: index 2, CHALLENGE, RESPONSE, DATA with cksum ≠ 0, no CHAP secret |
//! | b | 6.12 | token, rxrpc.ko | same | same |
//! | c | 6.1  | token, no rxrpc.ko | same | the userspace client (transport `udp`), same capture checks |
//! | d | 6.1  | token, unused | `netboot.config.security=none netboot.config.required=1` | configd refuses the plain call (CHAP secret, no `serve_secrets_insecure`): one failure line naming the server, then halt |
//! | e | 6.1  | token | `netboot.config.token=/etc/netboot/wrong.token netboot.config.required=1 netboot.on_fail=halt` | the server's rxkad abort, one line naming the server, halt |
//! | g | 6.1  | token | `netboot.config.token=/etc/netboot/expired.token netboot.config.required=1 netboot.on_fail=halt` | an error saying the token expired, naming the server, halt |
//! | f | 6.1 / 6.12 | token | `netboot.config.security=none`, config with `serve_secrets_insecure` | the plain fetch (index 0), for the time next to a/b |
//!
//! Measurements are printed as `MEASURE rxkad …` lines: boot.json's `config.fetch` duration and
//! the on-wire time of the exchange in the capture (first client packet to the server's last
//! DATA). Prerequisites as in tests/vm.rs plus tcpdump; without them `SKIPPED: …`, with
//! `NETBOOT_REQUIRE_VM=1` a failure. Run: `cargo test --test vm_rxkad -- --test-threads=1`.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use std::fs;
use std::path::{Path, PathBuf};

mod support;
mod vm_support;

use support::configd::run_tool;
use vm_support::*;

const GUEST_MAC: &str = "52:54:00:12:34:56";
const GUEST_MAC_FILE: &str = "mac-52-54-00-12-34-56.json";
const FETCHED_INITIATOR: &str = "iqn.2026-11.test:fetched-rxkad";
const SERVER: &str = "198.18.0.1:7260";
const CONFIG_CMDLINE: &str = "netboot.config=rxrpc:198.18.0.1";
/// The failure scenarios: the fetch must work, and a failed boot powers off (no config, so
/// the command line sets the policy).
const FAIL_CMDLINE: &str = "netboot.config.required=1 netboot.on_fail=halt";
/// rxkad codes (rxkad.md §7).
const RXKAD_FIRST: i32 = 19_270_400;
const RXKAD_LAST: i32 = 19_270_412;

/// Keys and tokens of this process: the server key configd uses, a token for the guest's
/// MAC minted from it, and a token minted from another key with the same kvno.
struct Keys {
    server: PathBuf,
    token: PathBuf,
    wrong_token: PathBuf,
    expired_token: PathBuf,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let d = work_dir().join("rxkad");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("rxkad dir");
        let p = |n: &str| d.join(n).to_string_lossy().into_owned();
        run_tool(&["key", "new", "--kvno", "3", "--out", &p("server.keys")]);
        run_tool(&["key", "new", "--kvno", "3", "--out", &p("other.keys")]);
        for (keys, out) in [("server.keys", "token"), ("other.keys", "wrong.token")] {
            run_tool(&[
                "token",
                "--keys",
                &p(keys),
                "--machine",
                GUEST_MAC,
                "--lifetime",
                "2h",
                "--out",
                &p(out),
            ]);
        }
        // Valid for one hour, three days ago.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            - 3 * 86_400;
        run_tool(&[
            "token",
            "--keys",
            &p("server.keys"),
            "--machine",
            GUEST_MAC,
            "--lifetime",
            "1h",
            "--start",
            &start.to_string(),
            "--out",
            &p("expired.token"),
        ]);
        Keys {
            server: d.join("server.keys"),
            token: d.join("token"),
            wrong_token: d.join("wrong.token"),
            expired_token: d.join("expired.token"),
        }
    })
}

/// The hex strings of a token file (session key, ticket): none may show on the console.
fn token_secrets(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("token file");
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// The agent's initramfs with the token (`build.sh --config-token`: /etc/netboot/config.token)
/// and the wrong one (`--add`), `--no-rxrpc` for the userspace client.
fn token_initrd(kernel: &str, rxrpc: bool) -> PathBuf {
    let k = keys();
    let add = |src: &Path, dest: &str| format!("{}:{dest}", src.display());
    let t = k.token.to_string_lossy().into_owned();
    let w = add(&k.wrong_token, "/etc/netboot/wrong.token");
    let x = add(&k.expired_token, "/etc/netboot/expired.token");
    let mut extra = vec!["--config-token", &t, "--add", &w, "--add", &x];
    if !rxrpc {
        extra.push("--no-rxrpc");
    }
    let name = if rxrpc {
        "netboot-rxkad"
    } else {
        "netboot-rxkad-norxrpc"
    };
    netboot_initrd_with(kernel, name, &extra)
}

/// configd's directory for scenario `name`: the guest's config (by MAC) with the CHAP
/// secret; `serve_secrets_insecure` lets configd hand it out on a plain call.
fn config_dir(name: &str, serve_secrets_insecure: bool) -> PathBuf {
    let d = work_dir().join(format!("configd-rxkad-{name}"));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("configd dir");
    let mut guest = serde_json::json!({
        "version": 1,
        "paths": [{ "server": "198.18.0.1", "port": 3260, "lun": 1, "target": IQN,
                    "chap": { "username": CHAP_USER, "password": CHAP_SECRET } }],
        "initiator": FETCHED_INITIATOR,
        "ip": ["198.18.0.2::198.18.0.1:255.255.255.0::eth0:off"],
        "root": { "device": "LABEL=nbroot", "fstype": "ext4", "read_only": true },
        "timeout_ms": 60000,
        "on_fail": "halt",
        "log": "debug"
    });
    if serve_secrets_insecure {
        guest["serve_secrets_insecure"] = serde_json::Value::Bool(true);
    }
    fs::write(d.join(GUEST_MAC_FILE), guest.to_string()).expect("write config");
    d
}

fn rxkad_args() -> String {
    format!("--rxkad-keys {}", keys().server.display())
}

struct Run {
    b: Booted,
    pcap: Vec<u8>,
}

/// One boot with configd serving `dir` (with the server key) and the whole bridge captured.
fn boot_rxkad(name: &str, kernel: &str, initrd: PathBuf, dir: PathBuf, append: &str) -> Run {
    let pcap = work_dir().join(format!("rxkad-{name}.pcap"));
    let _ = fs::remove_file(&pcap);
    let pcap_s = pcap.to_string_lossy().into_owned();
    let args = rxkad_args();
    let b = boot_with(
        Vm {
            name,
            kernel,
            initrd,
            image: plain_image(),
            chap: Some(format!("{CHAP_USER}:{CHAP_SECRET}")),
            mutual: None,
            append: append.to_string(),
            configd: Some(dir),
        },
        &[
            "--dhcp",
            "--configd-args",
            &args,
            "--capture",
            &pcap_s,
            "--capture-filter",
            "",
        ],
    );
    let pcap = fs::read(&pcap).unwrap_or_else(|e| panic!("{}: {e}\n{}", pcap_s, b.tail()));
    println!(
        "vm_rxkad: boot {name} ({kernel}): wall {:?} s, capture {} bytes",
        b.wall,
        pcap.len()
    );
    Run { b, pcap }
}

// ---------------------------------------------------------------------------------------------
// the capture

/// One Rx packet seen on the bridge (UDP to or from port 7260).
#[derive(Debug, Clone)]
struct RxSeen {
    t_us: u64,
    to_server: bool,
    /// The guest's UDP port (one per client socket).
    port: u16,
    ptype: u8,
    flags: u8,
    security_index: u8,
    cksum: u16,
    call: u32,
    seq: u32,
    payload_len: usize,
    /// ABORT: the code.
    abort: Option<i32>,
    /// The whole Rx packet (header and payload).
    bytes: Vec<u8>,
}

/// The Rx packets of a classic pcap (little-endian µs, Ethernet, IPv4/UDP).
fn rx_packets(pcap: &[u8]) -> Vec<RxSeen> {
    assert!(pcap.len() >= 24, "pcap of {} bytes", pcap.len());
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "not a µs little-endian pcap"
    );
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let be16 = |b: &[u8], o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let t_us = u64::from(le32(pcap, off)) * 1_000_000 + u64::from(le32(pcap, off + 4));
        let caplen = le32(pcap, off + 8) as usize;
        let f = &pcap[off + 16..(off + 16 + caplen).min(pcap.len())];
        off += 16 + caplen;
        if f.len() < 14 + 20 || be16(f, 12) != 0x0800 {
            continue;
        }
        let ip = &f[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let (sport, dport) = (be16(udp, 0), be16(udp, 2));
        if sport != 7260 && dport != 7260 {
            continue;
        }
        let rx = &udp[8..];
        if rx.len() < 28 {
            continue;
        }
        out.push(RxSeen {
            t_us,
            to_server: dport == 7260,
            port: if dport == 7260 { sport } else { dport },
            call: be32(rx, 8),
            seq: be32(rx, 12),
            ptype: rx[20],
            flags: rx[21],
            security_index: rx[23],
            cksum: be16(rx, 24),
            payload_len: rx.len() - 28,
            abort: (rx[20] == 4 && rx.len() >= 32).then(|| be32(rx, 28) as i32),
            bytes: rx.to_vec(),
        });
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn describe(seen: &[RxSeen]) -> String {
    seen.iter()
        .map(|p| {
            format!(
                "{} {} type {} flags {:#04x} idx {} cksum {:#06x} call {} seq {} len {}{}",
                p.t_us,
                if p.to_server { "->" } else { "<-" },
                p.ptype,
                p.flags,
                p.security_index,
                p.cksum,
                p.call,
                p.seq,
                p.payload_len,
                p.abort.map(|c| format!(" abort {c}")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The capture of a secured fetch: every packet on index 2, a CHALLENGE from configd, a
/// RESPONSE from the guest, DATA both ways with a nonzero header cksum, and the CHAP secret
/// nowhere in the whole capture (every packet of the boot). Returns the on-wire time of the
/// exchange (first client packet to the server's last DATA), µs.
fn assert_secured_capture(r: &Run) -> u64 {
    let seen = rx_packets(&r.pcap);
    let all = describe(&seen);
    let tail = r.b.tail();
    assert!(!seen.is_empty(), "no Rx packet in the capture\n{tail}");
    let wrong: Vec<&RxSeen> = seen.iter().filter(|p| p.security_index != 2).collect();
    assert!(
        wrong.is_empty(),
        "packets not on security index 2: {wrong:?}\n{all}"
    );
    let n = |to: bool, t: u8| {
        seen.iter()
            .filter(|p| p.to_server == to && p.ptype == t)
            .count()
    };
    assert!(n(false, 6) >= 1, "no CHALLENGE from configd\n{all}");
    assert!(n(true, 7) >= 1, "no RESPONSE from the guest\n{all}");
    let data: Vec<&RxSeen> = seen.iter().filter(|p| p.ptype == 1).collect();
    assert!(
        data.iter().any(|p| p.to_server) && data.iter().any(|p| !p.to_server),
        "DATA both ways\n{all}"
    );
    assert!(
        data.iter().all(|p| p.cksum != 0),
        "DATA without a header cksum\n{all}"
    );
    assert!(
        !contains(&r.pcap, CHAP_SECRET.as_bytes()),
        "the CHAP secret is in the capture of {} bytes\n{all}",
        r.pcap.len()
    );
    // The initiator name is in clear in the iSCSI login (TCP), not in the RxRPC reply.
    assert!(
        contains(&r.pcap, FETCHED_INITIATOR.as_bytes()),
        "the capture has the whole boot (the iSCSI login names the initiator)"
    );
    assert!(
        !seen
            .iter()
            .any(|p| contains(&p.bytes, FETCHED_INITIATOR.as_bytes())),
        "the config's initiator name is in clear in an RxRPC packet (level encrypt)\n{all}"
    );
    wire_time(&seen, &all)
}

/// First client packet to the server's last DATA, on the client socket that got the reply
/// (the 6.12 kernel's first call can be aborted locally and made again, kernel.rs
/// `call_timeout_cmsg`; that earlier socket is reported, not timed).
fn wire_time(seen: &[RxSeen], all: &str) -> u64 {
    let Some(last) = seen.iter().rev().find(|p| !p.to_server && p.ptype == 1) else {
        panic!("no reply DATA in the capture\n{all}")
    };
    let sockets: std::collections::BTreeSet<u16> = seen.iter().map(|p| p.port).collect();
    if sockets.len() > 1 {
        println!(
            "vm_rxkad: {} client sockets in the capture (a call was made again)",
            sockets.len()
        );
    }
    let first = seen
        .iter()
        .find(|p| p.to_server && p.port == last.port)
        .map_or(last.t_us, |p| p.t_us);
    last.t_us.saturating_sub(first)
}

// ---------------------------------------------------------------------------------------------
// the report

fn fetch_step(b: &Booted) -> serde_json::Value {
    let report = boot_json(b);
    step_of(&report, "config.fetch")
        .unwrap_or_else(|| panic!("no config.fetch step in boot.json\n{}", b.tail()))
        .clone()
}

/// The fetch worked over `transport`, and the rest of the boot used the fetched config.
fn assert_fetched(r: &Run, transport: &str, security: &str) -> serde_json::Value {
    let b = &r.b;
    b.assert_root_ok();
    b.assert_no_secret(&[CHAP_SECRET]);
    let secrets = token_secrets(&keys().token);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    b.assert_no_secret(&refs);
    let fetch = fetch_step(b);
    assert_eq!(fetch["result"], "ok", "config.fetch: {fetch}\n{}", b.tail());
    assert_eq!(
        fetch["facts"]["transport"],
        transport,
        "{fetch}\n{}",
        b.tail()
    );
    assert_eq!(fetch["facts"]["server"], SERVER, "{fetch}");
    assert_eq!(fetch["facts"]["security"], security, "{fetch}");
    let kv = b.iscsi();
    assert_eq!(
        kv.get("initiatorname").map(String::as_str),
        Some(FETCHED_INITIATOR),
        "initiator from the config\n{}",
        b.tail()
    );
    assert_iscsi_report(b, Some(CHAP_USER));
    fetch
}

fn fetch_us(fetch: &serde_json::Value) -> u64 {
    fetch["duration_us"].as_u64().unwrap_or_default()
}

fn measure(kernel: &str, what: &str, fetch: &serde_json::Value, wire_us: u64) {
    println!(
        "MEASURE rxkad kernel={kernel} {what}: config.fetch {:.1} ms (took_ms {}), on the wire {:.1} ms",
        fetch_us(fetch) as f64 / 1000.0,
        fetch["facts"]["took_ms"],
        wire_us as f64 / 1000.0
    );
}

/// The on-wire time of a plain exchange: first client packet to the server's last DATA.
fn plain_wire_us(r: &Run) -> u64 {
    let seen = rx_packets(&r.pcap);
    let all = describe(&seen);
    assert!(
        seen.iter().all(|p| p.security_index == 0),
        "plain fetch not on index 0\n{all}"
    );
    wire_time(&seen, &all)
}

/// One failure line at config.fetch naming the server, and halt; returns the line.
fn assert_config_required_failure(b: &Booted) -> String {
    assert_eq!(
        b.code,
        Some(0),
        "QEMU did not power off by itself\n{}",
        b.tail()
    );
    assert!(!b.console.contains("NETBOOT-ROOT-OK"), "{}", b.tail());
    let lines: Vec<&str> = b
        .agent_lines()
        .filter(|l| l.contains("boot failed at config.fetch") && l.contains(SERVER))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one failure line naming the step and the server\n{}",
        b.tail()
    );
    assert!(lines[0].contains("netboot.on_fail=halt"), "{}", lines[0]);
    b.assert_no_secret(&[CHAP_SECRET]);
    lines[0].to_string()
}

// ---------------------------------------------------------------------------------------------
// scenarios

fn tcpdump_missing() -> bool {
    if on_path("tcpdump") {
        return false;
    }
    skip("tcpdump not found (run scripts/setup.sh)");
    true
}

fn secured_and_plain(kernel: &str) {
    let append = format!("{CONFIG_CMDLINE} netboot.config.security=encrypt");
    let r = boot_rxkad(
        &format!("secured-{kernel}"),
        kernel,
        token_initrd(kernel, true),
        config_dir(&format!("secured-{kernel}"), false),
        &append,
    );
    let fetch = assert_fetched(&r, "af_rxrpc", "encrypt");
    let wire = assert_secured_capture(&r);
    measure(kernel, "secured (AF_RXRPC, encrypt)", &fetch, wire);

    // The same config over a plain call (`netboot.config.security=none`: the token is not
    // used), allowed by the file: the time to compare with.
    let r = boot_rxkad(
        &format!("plain-{kernel}"),
        kernel,
        token_initrd(kernel, true),
        config_dir(&format!("plain-{kernel}"), true),
        &format!("{CONFIG_CMDLINE} netboot.config.security=none"),
    );
    let plain = assert_fetched(&r, "af_rxrpc", "none");
    let plain_wire = plain_wire_us(&r);
    // The control for the capture check above: a plain reply carries the secret in clear.
    assert!(
        contains(&r.pcap, CHAP_SECRET.as_bytes()),
        "the plain fetch's capture shows the CHAP secret (else the check above proves nothing)"
    );
    measure(
        kernel,
        "plain (AF_RXRPC, serve_secrets_insecure)",
        &plain,
        plain_wire,
    );
    println!(
        "MEASURE rxkad kernel={kernel} secured/plain: config.fetch {:.2}x, on the wire {:.2}x",
        fetch_us(&fetch) as f64 / fetch_us(&plain).max(1) as f64,
        wire as f64 / plain_wire.max(1) as f64
    );
}

/// a, f. 6.1: the guest kernel's rxkad client at level encrypt, then the plain fetch.
#[test]
fn a_kernel_rxkad_encrypt_6_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    secured_and_plain("6.1");
}

/// b, f. The same on 6.12.
#[test]
fn b_kernel_rxkad_encrypt_6_12() {
    let Some(_vm) = prepare("6.12", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    secured_and_plain("6.12");
}

/// c. No rxrpc.ko: the agent's userspace rxkad client, same checks on the capture.
#[test]
fn c_userspace_rxkad_encrypt() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    let r = boot_rxkad(
        "udp-6.1",
        "6.1",
        token_initrd("6.1", false),
        config_dir("udp-6.1", false),
        &format!("{CONFIG_CMDLINE} netboot.config.security=encrypt"),
    );
    let fetch = assert_fetched(&r, "udp", "encrypt");
    let wire = assert_secured_capture(&r);
    measure("6.1", "secured (userspace, encrypt)", &fetch, wire);
}

/// d. A plain call (`netboot.config.security=none`: security index 0, the token unused, as
/// for a machine without one) for a config with a CHAP secret: configd refuses it
/// (NBCONF_SECRETS_REFUSED); the `netboot.config.required=1` policy fails the boot with one
/// line naming the server.
#[test]
fn d_plain_call_refused_by_configd() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    let r = boot_rxkad(
        "plain-refused",
        "6.1",
        token_initrd("6.1", true),
        config_dir("plain-refused", false),
        &format!("{CONFIG_CMDLINE} netboot.config.security=none {FAIL_CMDLINE}"),
    );
    let line = assert_config_required_failure(&r.b);
    println!("vm_rxkad: plain refused: {line}");
    let seen = rx_packets(&r.pcap);
    let all = describe(&seen);
    assert!(
        seen.iter().any(|p| !p.to_server && p.ptype == 4),
        "configd answered the plain call with an ABORT\n{all}"
    );
    assert!(
        !seen.iter().any(|p| !p.to_server && p.ptype == 1),
        "configd sent DATA on a refused plain call\n{all}"
    );
    assert!(
        !contains(&r.pcap, CHAP_SECRET.as_bytes()),
        "CHAP secret in the capture\n{all}"
    );
}

/// e. A token minted from another server key: configd aborts the handshake with an rxkad
/// code; one line naming the server, then the `netboot.config.required=1` policy.
#[test]
fn e_wrong_token_names_the_server() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    let r = boot_rxkad(
        "wrong-token",
        "6.1",
        token_initrd("6.1", true),
        config_dir("wrong-token", false),
        &format!(
            "{CONFIG_CMDLINE} netboot.config.security=encrypt \
             netboot.config.token=/etc/netboot/wrong.token {FAIL_CMDLINE}"
        ),
    );
    let line = assert_config_required_failure(&r.b);
    println!("vm_rxkad: wrong token: {line}");
    let seen = rx_packets(&r.pcap);
    let all = describe(&seen);
    assert!(
        seen.iter().any(|p| !p.to_server && p.ptype == 6),
        "no CHALLENGE\n{all}"
    );
    assert!(
        seen.iter().any(|p| !p.to_server
            && p.abort
                .is_some_and(|c| (RXKAD_FIRST..=RXKAD_LAST).contains(&c))),
        "configd aborted the handshake with an rxkad code\n{all}"
    );
    assert!(
        !seen.iter().any(|p| !p.to_server && p.ptype == 1),
        "configd sent DATA to a bad token\n{all}"
    );
    assert!(
        !contains(&r.pcap, CHAP_SECRET.as_bytes()),
        "CHAP secret in the capture\n{all}"
    );
}

/// g. An expired token: the kernel's `rxrpc` key carries the token's expiry, so the call
/// fails before or at the handshake; the error says so and names the server, then the
/// `netboot.config.required=1` policy.
#[test]
fn g_expired_token_names_the_server() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    if tcpdump_missing() {
        return;
    }
    let r = boot_rxkad(
        "expired-token",
        "6.1",
        token_initrd("6.1", true),
        config_dir("expired-token", false),
        &format!(
            "{CONFIG_CMDLINE} netboot.config.security=encrypt \
             netboot.config.token=/etc/netboot/expired.token {FAIL_CMDLINE}"
        ),
    );
    let line = assert_config_required_failure(&r.b);
    println!("vm_rxkad: expired token: {line}");
    assert!(
        line.to_lowercase().contains("expired"),
        "the failure says the token expired: {line}\n{}",
        r.b.tail()
    );
    let seen = rx_packets(&r.pcap);
    let all = describe(&seen);
    assert!(
        !seen.iter().any(|p| !p.to_server && p.ptype == 1),
        "configd sent DATA to an expired token\n{all}"
    );
}
