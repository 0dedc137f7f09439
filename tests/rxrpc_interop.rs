//! Interop with an independent Rx implementation: Debian 12's OpenAFS 1.8.9
//! (rxrpc.md §3), plus the captured fixtures.
//!
//! Layout: one private network namespace `nbafs-<pid>` with 10.99.0.1/32 on
//! its `lo` (ubik refuses loopback-only hosts, rxrpc.md §3.3). Inside it:
//! OpenAFS `vlserver -noauth` (UDP 7003, in its own mount+UTS namespace so
//! the host name `afstest` resolves through a bind-mounted /etc/hosts) and
//! `netboot-configd` on 127.0.0.1:7260. Our client runs on a thread that
//! `setns()`es into the namespace; OpenAFS `rxdebug` runs via
//! `ip netns exec`. The namespace is deleted at the end.
//!
//! OpenAFS comes from `tests/fixtures/rxrpc/openafs.sh` (apt-get download +
//! dpkg-deb -x into target/openafs). With NETBOOT_RXRPC_CAPTURE=DIR the
//! test also records the namespace's loopback with tcpdump into
//! DIR/interop.pcap (see tests/fixtures/rxrpc/capture.sh).
//!
//! Skips with a printed reason without root, ip, apt-get download access or
//! the binaries (`SKIPPED: …` on stderr) — unless NETBOOT_REQUIRE_ROOT=1.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::rxrpc::call::CallError;
use netboot::rxrpc::udp::UdpTransport;
use netboot::rxrpc::wire::{self, ack_reason, Body, Packet};
use netboot::rxrpc::RxTransport;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::afs::{in_ns, ip, openafs, Guard};

const CONFIGD: &str = env!("CARGO_BIN_EXE_netboot-configd");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rxrpc");

fn skip(why: &str) {
    support::skip_unless_required("NETBOOT_REQUIRE_ROOT", "this test", why);
}

fn write_afs_config(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("ThisCell"), "test.local\n").expect("ThisCell");
    std::fs::write(
        dir.join("CellServDB"),
        ">test.local #test cell\n10.99.0.1 #afstest\n",
    )
    .expect("CellServDB");
    std::fs::write(
        dir.join("hosts"),
        "127.0.0.1 localhost\n10.99.0.1 afstest\n",
    )
    .expect("hosts");
}

#[test]
fn openafs_interop() {
    if !support::is_root() {
        return skip("not root (network namespace needed)");
    }
    let root = match openafs() {
        Ok(r) => r,
        Err(e) => return skip(&e),
    };
    let libs = root.join("usr/lib/x86_64-linux-gnu");
    let ns = format!("nbafs-{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &ns]) {
        return skip(&e);
    }
    let mut g = Guard {
        ns: ns.clone(),
        children: Vec::new(),
        tcpdump: None,
    };
    ip(&["-n", &ns, "addr", "add", "10.99.0.1/32", "dev", "lo"]).expect("addr");
    ip(&["-n", &ns, "link", "set", "lo", "up"]).expect("lo up");

    let capture = std::env::var("NETBOOT_RXRPC_CAPTURE").ok();
    if let Some(dir) = &capture {
        let pcap = format!("{dir}/interop.pcap");
        let c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "tcpdump",
                "--immediate-mode",
                "-i",
                "lo",
                "-U",
                "-s",
                "0",
                "-w",
                &pcap,
                "udp",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // Wait for "listening on lo" so no packet is missed.
        let mut c = c;
        if let Some(err) = c.stderr.take() {
            use std::io::{BufRead, BufReader};
            let mut lines = BufReader::new(err).lines();
            let ready = lines.next().and_then(Result::ok).unwrap_or_default();
            assert!(ready.contains("listening on"), "tcpdump: {ready}");
            std::thread::spawn(move || {
                lines
                    .map_while(Result::ok)
                    .for_each(|l| eprintln!("tcpdump: {l}"))
            });
        }
        g.tcpdump = Some(c);
    }

    let work = std::env::temp_dir().join(format!("netboot-afs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    write_afs_config(&work);
    let w = work.display().to_string();
    let vl = root.join("usr/lib/openafs/vlserver").display().to_string();
    let script = format!(
        "hostname afstest && mount --bind {w}/hosts /etc/hosts && \
         exec env LD_LIBRARY_PATH={} {vl} -noauth -config {w} -database {w}/vldb -logfile {w}/VLLog",
        libs.display()
    );
    let c = Command::new("ip")
        .args([
            "netns", "exec", &ns, "unshare", "-m", "-u", "sh", "-c", &script,
        ])
        .spawn()
        .expect("vlserver");
    g.children.push(c);

    std::fs::create_dir_all(work.join("conf")).expect("conf");
    std::fs::write(work.join("conf/default.json"), r#"{"version":1}"#).expect("json");
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            CONFIGD,
            "--dir",
            &format!("{w}/conf"),
            "--listen",
            "127.0.0.1:7260",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("configd");
    g.children.push(c);

    // rxdebug -version against configd (rxrpc.md §1.10).
    let rxdebug = root.join("usr/bin/rxdebug");
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "env"])
            .arg(format!("LD_LIBRARY_PATH={}", libs.display()))
            .arg(&rxdebug)
            .args(["127.0.0.1", "7260", "-version"])
            .output()
            .expect("rxdebug");
        printed = String::from_utf8_lossy(&out.stdout).into_owned();
        if printed.contains("netboot-configd") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("rxdebug printed: {printed:?}");
    assert!(
        printed.contains(&format!(
            "AFS version: netboot-configd {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{printed}"
    );

    // Our client → vlserver: VL_ProbeServer (service 52, opcode 514) and an
    // unknown opcode (rxrpc.md §3.4).
    let (probe, unknown, svc77) = in_ns(&ns, || {
        let vl: SocketAddr = "127.0.0.1:7003".parse().expect("addr");
        let mut t = UdpTransport::new(4096);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut probe = t.call(vl, 52, &514u32.to_be_bytes(), Duration::from_secs(2));
        while probe.is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            probe = t.call(vl, 52, &514u32.to_be_bytes(), Duration::from_secs(2));
        }
        let unknown = t.call(vl, 52, &9999u32.to_be_bytes(), Duration::from_secs(5));
        let svc77 = t.call(vl, 77, &1u32.to_be_bytes(), Duration::from_secs(5));
        (probe, unknown, svc77)
    });
    eprintln!("VL_ProbeServer: {probe:?}; opcode 9999: {unknown:?}; service 77: {svc77:?}");
    let log = std::fs::read_to_string(work.join("VLLog")).unwrap_or_default();
    assert_eq!(probe, Ok(vec![]), "vlserver log:\n{log}");
    assert_eq!(unknown, Err(CallError::Aborted(-455)));
    assert_eq!(svc77, Err(CallError::Aborted(-2)));
    std::thread::sleep(Duration::from_millis(300));
    drop(g);
    let _ = std::fs::remove_dir_all(&work);
}

// ---------------------------------------------------------------------------
// Captured fixtures (capture.sh): every packet parses and re-encodes to the
// same bytes; key packets are checked field by field.
// ---------------------------------------------------------------------------

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(FIXTURES)
        .expect("fixtures dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn fixtures_round_trip() {
    let all = fixtures();
    if all.is_empty() {
        return skip("no fixtures captured yet (run tests/fixtures/rxrpc/capture.sh)");
    }
    for (name, bytes) in &all {
        let p = Packet::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &p.encode().expect("encode"),
            bytes,
            "{name} re-encodes differently"
        );
        if let Body::Data(d) = &p.body {
            let subs = wire::split_jumbo(&p.header, d).expect("split");
            assert_eq!(wire::build_jumbo(&subs).expect("build"), *bytes, "{name}");
        }
    }
    eprintln!("{} fixture packets round-trip", all.len());
}

#[test]
fn fixtures_match_reference_exchange() {
    let all = fixtures();
    if all.is_empty() {
        return skip("no fixtures captured yet");
    }
    let get = |prefix: &str| {
        all.iter()
            .filter(|(n, _)| n.contains(prefix))
            .map(|(_, b)| Packet::decode(b).expect("decode"))
            .collect::<Vec<_>>()
    };
    // rxdebug -version request and our reply (rxrpc.md §1.10).
    let v = get("version");
    let req = v
        .iter()
        .find(|p| p.header.is_client_initiated())
        .expect("version request");
    assert_eq!(
        (
            req.header.ptype,
            req.header.flags,
            req.header.epoch,
            req.header.cid
        ),
        (13, 0x05, 999, 0)
    );
    let rep = v
        .iter()
        .find(|p| !p.header.is_client_initiated())
        .expect("version reply");
    let Body::Version(b) = &rep.body else {
        panic!()
    };
    assert!(wire::version_string(b).starts_with("netboot-configd"));
    // VL_ProbeServer exchange (rxrpc.md §1.8).
    let probe = get("probe");
    let first = probe.first().expect("probe packets");
    assert_eq!(first.header.service_id, 52);
    assert_eq!(first.body, Body::Data(vec![0, 0, 2, 2]));
    assert_eq!(first.header.flags, 0x05);
    let vl_ack = probe.iter().find_map(|p| match &p.body {
        Body::Ack(a) if !p.header.is_client_initiated() => Some(a.clone()),
        _ => None,
    });
    if let Some(a) = vl_ack {
        // OpenAFS 1.8.9 trailer (1444, 1444, 16, 1) as in rxrpc.md §1.5.
        let t = a.trailer.expect("trailer");
        assert_eq!((t.rx_mtu, t.max_mtu, t.jumbo_max), (1444, 1444, 1));
    }
    let reply = probe
        .iter()
        .find(|p| matches!(p.body, Body::Data(_)) && !p.header.is_client_initiated())
        .expect("reply");
    assert_eq!(reply.body, Body::Data(vec![]));
    assert_eq!(
        reply.header.flags & wire::flags::LAST_PACKET,
        wire::flags::LAST_PACKET
    );
    let fin = probe
        .iter()
        .rev()
        .find_map(|p| match &p.body {
            Body::Ack(a) if p.header.is_client_initiated() => Some(a.clone()),
            _ => None,
        })
        .expect("final ack");
    assert_eq!((fin.first_packet, fin.reason), (2, ack_reason::IDLE));
    // Unknown opcode → ABORT -455.
    let un = get("unknown");
    assert!(un
        .iter()
        .any(|p| matches!(p.body, Body::Abort { code: -455, .. })));
}

/// The guest kernel's AF_RXRPC client (6.1 and 6.12) against our configd,
/// captured on the VM rig's bridge by `capture-kernel.sh`: the request our
/// agent makes through the kernel decodes as GetConfig with the guest's
/// identity, the reply is the served JSON, and the kernel ends the call with
/// an IDLE ACK hard-acking the reply (rxrpc.md §1.8). 6.12 also pings (ACK
/// reason PING with REQUEST_ACK), which configd answers with PING_RESPONSE.
#[test]
fn kernel_af_rxrpc_fixtures() {
    use netboot::config::proto::{self, Request};
    let all = fixtures();
    for kernel in ["kernel61", "kernel612"] {
        let pkts: Vec<Packet> = all
            .iter()
            .filter(|(n, _)| n.contains(&format!("-{kernel}-")))
            .map(|(n, b)| Packet::decode(b).unwrap_or_else(|e| panic!("{n}: {e}")))
            .collect();
        if pkts.is_empty() {
            return skip("no kernel fixtures (run tests/fixtures/rxrpc/capture-kernel.sh)");
        }
        let req = &pkts[0];
        let h = &req.header;
        assert!(
            h.is_client_initiated(),
            "{kernel}: first packet is the request"
        );
        assert_eq!((h.ptype, h.call, h.seq, h.serial), (1, 1, 1, 1), "{kernel}");
        // CLIENT_INITIATED | REQUEST_ACK | LAST_PACKET: one-packet request,
        // Linux asks for an ACK to measure the RTT.
        assert_eq!(h.flags, 0x07, "{kernel}");
        assert_eq!(h.service_id, proto::SERVICE_ID);
        assert_ne!(h.epoch & 0x8000_0000, 0, "{kernel}: random epoch flag");
        let Body::Data(d) = &req.body else {
            panic!("{kernel}: request is not DATA")
        };
        let Ok(Request::GetConfig(id)) = proto::decode_request(d) else {
            panic!("{kernel}: request does not decode as GetConfig")
        };
        assert_eq!(id.mac, "52:54:00:12:34:56", "{kernel}");
        assert_eq!(id.iqn, "iqn.2026-11.org.netboot:525400123456", "{kernel}");
        let reply = pkts
            .iter()
            .find(|p| !p.header.is_client_initiated() && matches!(p.body, Body::Data(_)))
            .expect("reply DATA");
        assert_eq!(
            (reply.header.seq, reply.header.flags),
            (1, 0x04),
            "{kernel}"
        );
        assert_eq!(
            (reply.header.epoch, reply.header.cid, reply.header.call),
            (h.epoch, h.cid, h.call)
        );
        let Body::Data(r) = &reply.body else { panic!() };
        let json = proto::decode_reply(r).expect("XDR opaque");
        netboot::config::Config::from_json(json).expect("served config is valid");
        let fin = pkts
            .iter()
            .rev()
            .find_map(|p| match &p.body {
                Body::Ack(a) if p.header.is_client_initiated() => Some(a.clone()),
                _ => None,
            })
            .expect("final ACK");
        assert_eq!(
            (fin.first_packet, fin.reason),
            (2, ack_reason::IDLE),
            "{kernel}"
        );
        assert!(
            fin.trailer.is_some(),
            "{kernel}: Linux ACKs carry the trailer"
        );
        if let Some(ping) = pkts.iter().find_map(|p| match &p.body {
            Body::Ack(a) if a.reason == ack_reason::PING => Some((p.header.serial, p.header.flags)),
            _ => None,
        }) {
            assert_ne!(
                ping.1 & wire::flags::REQUEST_ACK,
                0,
                "{kernel}: PING asks for a reply"
            );
            let pong = pkts.iter().find_map(|p| match &p.body {
                Body::Ack(a) if a.reason == ack_reason::PING_RESPONSE => Some(a.serial),
                _ => None,
            });
            assert_eq!(pong, Some(ping.0), "{kernel}: configd answers the PING");
        }
    }
}
