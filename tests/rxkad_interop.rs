//! rxkad interop with an independent implementation: our userspace rxkad client against
//! Debian 12's OpenAFS 1.8.9 `vlserver` checking tickets with a server key that came from
//! `netboot-configd key new` / `key openafs` (rxkad.md §8).
//!
//! Layout (as tests/rxrpc_interop.rs, but WITHOUT `-noauth`): one private network namespace
//! `nbkad-<pid>` with 10.99.0.1/32 on its `lo` (ubik refuses loopback-only hosts, rxrpc.md
//! §3.3). Inside it: `vlserver -config DIR` (UDP 7003, in its own mount+UTS namespace so the
//! host name `afstest` resolves through a bind-mounted /etc/hosts), DIR/KeyFile written by
//! `netboot-configd key openafs` from our key file (kvno 3). Our client runs on a thread that
//! `setns()`es into the namespace and calls VL_ProbeServer (service 52, opcode 514, no
//! arguments, empty reply) over security index 2:
//!
//! | case | token | level | expected |
//! |---|---|---|---|
//! | ours, auth / encrypt | `netboot-configd token --keys K --machine …` | 1 / 2 | the empty reply |
//! | localauth-shaped | ticket `afs@` start 0, life 0xFF, as OpenAFS `-localauth` mints it | 2 | the empty reply |
//! | wrong key | minted from another key, same kvno 3 | 2 | OpenAFS's connection abort RXKADBADTICKET |
//! | unknown kvno | minted from a key of kvno 9 | 2 | RXKADUNKNOWNKEY |
//! | expired | start 3 days ago, 1 h | 2 | RXKADEXPIRED (from OpenAFS, or refused by our client) |
//!
//! OpenAFS comes from `tests/fixtures/rxrpc/openafs.sh` (apt-get download + dpkg-deb -x into
//! target/openafs). With NETBOOT_RXKAD_CAPTURE=FILE the namespace's loopback is recorded
//! with tcpdump into FILE. Skips with a printed reason without root, ip or the binaries
//! (`SKIPPED: …` on stderr) — unless NETBOOT_REQUIRE_ROOT=1.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;

use netboot::rxkad::files::{self, Holder, Token};
use netboot::rxkad::ticket::{ServerKey, Ticket};
use netboot::rxkad::Level;
use netboot::rxrpc::call::CallError;
use netboot::rxrpc::udp::UdpTransport;
use netboot::rxrpc::RxTransport;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::afs::{in_ns, ip, openafs, Guard};
use support::configd::run_tool;

const RXKADBADTICKET: i32 = 19_270_407;
const RXKADUNKNOWNKEY: i32 = 19_270_408;
const RXKADEXPIRED: i32 = 19_270_409;

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

fn read_keys(path: &Path) -> Vec<ServerKey> {
    let text = std::fs::read_to_string(path).expect("key file");
    files::parse_key_file(&text, &path.display().to_string()).expect("key file parses")
}

/// The OpenAFS KeyFile bytes as rxkad.md §8 describes them (BE32 count, then BE32 kvno + 8
/// key bytes per key), written independently of `files::openafs_keyfile`.
fn keyfile_by_hand(keys: &[ServerKey]) -> Vec<u8> {
    let mut v = (keys.len() as u32).to_be_bytes().to_vec();
    for k in keys {
        v.extend_from_slice(&k.kvno.to_be_bytes());
        v.extend_from_slice(&k.key);
    }
    v
}

/// The token OpenAFS's `-localauth` would use (rxkad.md §8): ticket `afs` with empty
/// instance and cell, start 0, life 0xFF (never expires), host 0, service `afs`.
fn localauth_token(key: &ServerKey) -> Token {
    let ks = netboot::rxkad::ticket::fix_parity(random8());
    let t = Ticket {
        name: "afs".into(),
        instance: String::new(),
        realm: String::new(),
        host: [0; 4],
        session_key: ks,
        start: 0,
        life: 0xff,
        service: "afs".into(),
        service_instance: String::new(),
    };
    let ticket = t.seal(key).expect("seal");
    assert_eq!(
        ticket.len(),
        32,
        "a -localauth ticket is 29 bytes padded to 32"
    );
    Token {
        service: "afs".into(),
        name: "afs".into(),
        instance: String::new(),
        realm: String::new(),
        kvno: key.kvno,
        start: 0,
        expiry: u32::MAX,
        session_key: ks,
        ticket,
    }
}

/// Our userspace client with `token` at `level`.
fn secured(token: Token, level: Level) -> UdpTransport {
    UdpTransport::new(4096).secured(token, level)
}

#[test]
fn openafs_vlserver_checks_our_tickets() {
    if !support::is_root() {
        return skip("not root (network namespace needed)");
    }
    let root = match openafs() {
        Ok(r) => r,
        Err(e) => return skip(&e),
    };
    let libs = root.join("usr/lib/x86_64-linux-gnu");
    let work = std::env::temp_dir().join(format!("netboot-kad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    write_afs_config(&work);
    let w = work.display().to_string();

    // Our keys and tokens, made by our tools.
    let p = |n: &str| format!("{w}/{n}");
    run_tool(&["key", "new", "--kvno", "3", "--out", &p("server.keys")]);
    run_tool(&["key", "new", "--kvno", "3", "--out", &p("other.keys")]);
    run_tool(&["key", "new", "--kvno", "9", "--out", &p("kvno9.keys")]);
    run_tool(&[
        "key",
        "openafs",
        "--keys",
        &p("server.keys"),
        "--out",
        &p("KeyFile"),
    ]);
    let keys = read_keys(Path::new(&p("server.keys")));
    assert_eq!(keys.len(), 1);
    let keyfile = std::fs::read(p("KeyFile")).expect("KeyFile");
    assert_eq!(
        keyfile,
        keyfile_by_hand(&keys),
        "KeyFile bytes (rxkad.md §8)"
    );
    let mut tokens = Vec::new();
    for (k, out) in [
        ("server.keys", "good.token"),
        ("other.keys", "wrong.token"),
        ("kvno9.keys", "kvno9.token"),
    ] {
        run_tool(&[
            "token",
            "--keys",
            &p(k),
            "--machine",
            "52:54:00:12:34:56",
            "--lifetime",
            "1h",
            "--out",
            &p(out),
        ]);
        let text = std::fs::read_to_string(p(out)).expect("token");
        tokens.push(Token::parse(&text, out).expect("token parses"));
    }
    let expired = Token::mint(
        &keys[0],
        &Holder::Machine("52:54:00:12:34:56".into()),
        now() - 3 * 86_400,
        3600,
        random8(),
    )
    .expect("mint");
    let localauth = localauth_token(&keys[0]);

    let ns = format!("nbkad-{}", std::process::id());
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
    if let Ok(pcap) = std::env::var("NETBOOT_RXKAD_CAPTURE") {
        let mut c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "tcpdump",
                "--immediate-mode",
                "-i",
                "lo",
            ])
            .args(["-U", "-s", "0", "-w", &pcap, "udp"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        if let Some(err) = c.stderr.take() {
            use std::io::{BufRead, BufReader};
            let mut lines = BufReader::new(err).lines();
            let ready = lines.next().and_then(Result::ok).unwrap_or_default();
            assert!(ready.contains("listening on"), "tcpdump: {ready}");
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        }
        g.tcpdump = Some(c);
    }

    let vl = root.join("usr/lib/openafs/vlserver").display().to_string();
    // No -noauth: vlserver builds its rxkad security object from KeyFile.
    let script = format!(
        "hostname afstest && mount --bind {w}/hosts /etc/hosts && \
         exec env LD_LIBRARY_PATH={} {vl} -config {w} -database {w}/vldb -logfile {w}/VLLog",
        libs.display()
    );
    let c = Command::new("ip")
        .args([
            "netns", "exec", &ns, "unshare", "-m", "-u", "sh", "-c", &script,
        ])
        .spawn()
        .expect("vlserver");
    g.children.push(c);

    let [good, wrong, kvno9] = <[Token; 3]>::try_from(tokens).expect("three tokens");
    let results = in_ns(&ns, move || {
        let vl: SocketAddr = "127.0.0.1:7003".parse().expect("addr");
        let probe = 514u32.to_be_bytes();
        let call = |token: Token, level: Level| -> (Result<Vec<u8>, CallError>, Duration) {
            let mut t = secured(token, level);
            let t0 = Instant::now();
            let r = t.call(vl, 52, &probe, Duration::from_secs(5));
            (r, t0.elapsed())
        };
        // vlserver needs a moment to start: retry the first call.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut first = call(good.clone(), Level::Encrypt);
        while first.0.is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            first = call(good.clone(), Level::Encrypt);
        }
        let t0 = Instant::now();
        let plain = UdpTransport::new(4096).call(vl, 52, &probe, Duration::from_secs(5));
        let plain_took = t0.elapsed();
        vec![
            ("encrypt", first),
            ("auth", call(good.clone(), Level::Auth)),
            ("encrypt again", call(good, Level::Encrypt)),
            ("localauth-shaped", call(localauth, Level::Encrypt)),
            ("wrong key", call(wrong, Level::Encrypt)),
            ("unknown kvno", call(kvno9, Level::Encrypt)),
            ("expired", call(expired, Level::Encrypt)),
            ("plain (index 0)", (plain, plain_took)),
        ]
    });
    let log = std::fs::read_to_string(work.join("VLLog")).unwrap_or_default();
    for (what, (r, took)) in &results {
        let shown = match r {
            Ok(v) => format!("Ok({} bytes)", v.len()),
            Err(e) => format!("Err({e})"),
        };
        eprintln!("rxkad_interop: VL_ProbeServer {what}: {shown} in {took:?}");
    }
    let get = |what: &str| {
        &results
            .iter()
            .find(|(w, _)| *w == what)
            .unwrap_or_else(|| panic!("no result {what}"))
            .1
             .0
    };
    for ok in [
        "encrypt",
        "auth",
        "encrypt again",
        "localauth-shaped",
        "plain (index 0)",
    ] {
        assert_eq!(get(ok), &Ok(vec![]), "{ok}; vlserver log:\n{log}");
    }
    let aborted = |what: &str, code: i32, name: &str| {
        let r = get(what);
        let e = r
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{what}: OpenAFS accepted it"));
        let text = e.to_string();
        assert!(
            *e == CallError::Aborted(code) || text.contains(name),
            "{what}: want abort {code} ({name}), got {e:?} = {text}"
        );
    };
    aborted("wrong key", RXKADBADTICKET, "RXKADBADTICKET");
    aborted("unknown kvno", RXKADUNKNOWNKEY, "RXKADUNKNOWNKEY");
    aborted("expired", RXKADEXPIRED, "RXKADEXPIRED");
    std::thread::sleep(Duration::from_millis(300));
    drop(g);
    let _ = std::fs::remove_dir_all(&work);
}
