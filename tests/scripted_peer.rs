//! `netboot discover` / `netboot probe` against small scripted iSCSI peers on
//! loopback: the behaviours tgtd and istgt cannot be made to show on demand —
//! login redirects (0x0101/0x0102), transient target errors (0x03xx), a
//! target that never answers, a target that sends garbage, hostile targets
//! that keep a command going forever (endless text continuations, Data-In
//! without status, NOP-In floods), and one that offers so many keys that our
//! answer spans PDUs.
//!
//! Each peer is a thread on 127.0.0.1:0 that answers by script. No root needed.

use netboot::iscsi::pdu::{
    self, DataIn, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, Message, NopIn, Pdu,
    ScsiCommand, Stage, TargetSn, TextRequest, TextResponse, BHS_LEN,
};
use netboot::iscsi::text;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone)]
enum Behaviour {
    /// Answer the login with this status and keys, then close.
    Status(u16, Vec<(String, String)>),
    /// Log in, answer SendTargets with these records, answer logout.
    Serve(Vec<(String, String)>),
    /// Accept and read, never answer.
    Silent,
    /// Answer the login with this many raw bytes.
    Raw(Vec<u8>),
    /// Log in, then answer every Text Request with an empty continuation
    /// (C bit, no data), forever.
    EndlessContinuations,
    /// Log in, then answer the first SCSI command with Data-In PDUs of `len`
    /// bytes at offset 0, never with a status, one every `every`, forever.
    DataInForever { len: usize, every: Duration },
    /// Log in, then answer the first SCSI command with NOP-In PDUs (pings
    /// and not), forever, never reading.
    NopFlood,
    /// Offer `keys` vendor keys in the login (the text cut at 8192 bytes
    /// with the C bit), record every Login Request, then serve `records`.
    ManyKeys {
        keys: usize,
        records: Vec<(String, String)>,
        seen: Arc<Mutex<Vec<LoginRequest>>>,
    },
}

/// "Forever" for a hostile peer: until the client hangs up, or this long,
/// so that a client without bounds fails its test instead of hanging it.
const FOREVER: Duration = Duration::from_secs(20);

fn read_pdu(s: &mut TcpStream) -> Option<Pdu> {
    let mut bhs = [0u8; BHS_LEN];
    s.read_exact(&mut bhs).ok()?;
    let (ahs, data) = pdu::segment_lengths(&bhs);
    let mut tail = vec![0u8; pdu::wire_tail_len(ahs, data)];
    s.read_exact(&mut tail).ok()?;
    let mut all = bhs.to_vec();
    all.extend_from_slice(&tail);
    Pdu::decode(&all).ok().map(|(p, _)| p)
}

fn login_response(req: &LoginRequest, status: u16, tsih: u16, kv: &[(String, String)]) -> Pdu {
    LoginResponse {
        transit: status == 0,
        cont: false,
        csg: req.csg,
        nsg: Stage::FullFeature,
        version_max: 0,
        version_active: 0,
        isid: req.isid,
        tsih,
        itt: req.itt,
        sn: TargetSn {
            stat_sn: 1,
            exp_cmd_sn: req.cmd_sn,
            max_cmd_sn: req.cmd_sn + 8,
        },
        status_class: (status >> 8) as u8,
        status_detail: status as u8,
        data: text::encode(kv),
    }
    .to_pdu()
}

fn send(s: &mut TcpStream, p: &Pdu) {
    let _ = s.write_all(&p.encode().unwrap());
}

/// False once the client is gone.
fn try_send(s: &mut TcpStream, p: &Pdu) -> bool {
    s.write_all(&p.encode().unwrap()).is_ok()
}

fn sn(stat_sn: u32) -> TargetSn {
    TargetSn {
        stat_sn,
        exp_cmd_sn: 2,
        max_cmd_sn: 10,
    }
}

/// `X-com.example.key-NNNN=value-N`: keys no initiator knows.
fn vendor_keys(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("X-com.example.key-{i:04}"), format!("value-{i}")))
        .collect()
}

/// The ManyKeys login: our keys in 8192-byte pieces (each fetched by an
/// empty request), then the initiator's answer, every piece acknowledged
/// with an empty response, then the final response. Every Login Request
/// lands in `seen`.
fn many_keys_login(
    s: &mut TcpStream,
    first: LoginRequest,
    keys: usize,
    seen: &Mutex<Vec<LoginRequest>>,
) -> Option<()> {
    let record = |r: &LoginRequest| seen.lock().unwrap().push(r.clone());
    record(&first);
    // RFC 7143 §6.1 lets text split anywhere, pairs included.
    let offer = text::encode(&vendor_keys(keys));
    let pieces: Vec<&[u8]> = offer.chunks(8192).collect();
    let mut req = first;
    for (i, piece) in pieces.iter().enumerate() {
        let mut r = LoginResponse::from_pdu(&login_response(&req, 0, 0, &[])).unwrap();
        r.transit = false;
        r.nsg = req.csg;
        r.cont = i + 1 < pieces.len();
        r.data = piece.to_vec();
        send(s, &r.to_pdu());
        req = LoginRequest::from_pdu(&read_pdu(s)?).ok()?;
        record(&req);
    }
    // `req` is the first piece of the answer; acknowledge until the last.
    while req.cont {
        let mut ack = LoginResponse::from_pdu(&login_response(&req, 0, 0, &[])).unwrap();
        ack.transit = false;
        ack.nsg = req.csg;
        send(s, &ack.to_pdu());
        req = LoginRequest::from_pdu(&read_pdu(s)?).ok()?;
        record(&req);
    }
    send(
        s,
        &login_response(
            &req,
            0,
            0x4242,
            &[("TargetPortalGroupTag".into(), "1".into())],
        ),
    );
    Some(())
}

/// Full feature phase after a good login: SendTargets and logout answered
/// for `Serve`, the hostile behaviours otherwise.
fn full_feature(mut s: TcpStream, b: &Behaviour) {
    let records = match b {
        Behaviour::Serve(r) | Behaviour::ManyKeys { records: r, .. } => r.clone(),
        _ => Vec::new(),
    };
    let start = Instant::now();
    let mut stat_sn = 2;
    while let Some(p) = read_pdu(&mut s) {
        stat_sn += 1;
        match (b, Message::from_pdu(&p)) {
            (
                Behaviour::EndlessContinuations,
                Ok(Message::TextRequest(TextRequest { itt, .. })),
            ) => {
                let more = TextResponse {
                    final_: false,
                    cont: true,
                    lun: 0,
                    itt,
                    ttt: 0x77,
                    sn: sn(stat_sn),
                    data: vec![],
                };
                if !try_send(&mut s, &more.to_pdu()) || start.elapsed() > FOREVER {
                    return;
                }
            }
            (
                Behaviour::DataInForever { len, every },
                Ok(Message::ScsiCommand(ScsiCommand { itt, lun, .. })),
            ) => {
                for data_sn in 0.. {
                    let d = DataIn {
                        flags: 0,
                        status: 0,
                        lun,
                        itt,
                        ttt: pdu::RESERVED_TAG,
                        sn: sn(stat_sn),
                        data_sn,
                        offset: 0,
                        residual: 0,
                        data: vec![0; *len],
                    };
                    if !try_send(&mut s, &d.to_pdu()) || start.elapsed() > FOREVER {
                        return;
                    }
                    thread::sleep(*every);
                }
            }
            (Behaviour::NopFlood, Ok(Message::ScsiCommand(_))) => {
                for i in 0u32.. {
                    let ping = NopIn {
                        lun: 0,
                        itt: pdu::RESERVED_TAG,
                        // Every other one asks for an answer.
                        ttt: if i % 2 == 0 { pdu::RESERVED_TAG } else { i },
                        sn: sn(stat_sn),
                        data: b"ping".to_vec(),
                    };
                    if !try_send(&mut s, &ping.to_pdu()) || start.elapsed() > FOREVER {
                        return;
                    }
                }
            }
            (_, Ok(Message::TextRequest(TextRequest { itt, .. }))) => send(
                &mut s,
                &TextResponse {
                    final_: true,
                    cont: false,
                    lun: 0,
                    itt,
                    ttt: pdu::RESERVED_TAG,
                    sn: sn(stat_sn),
                    data: text::encode(&records),
                }
                .to_pdu(),
            ),
            (_, Ok(Message::LogoutRequest(LogoutRequest { itt, .. }))) => {
                send(
                    &mut s,
                    &LogoutResponse {
                        response: 0,
                        itt,
                        sn: sn(stat_sn),
                        time2wait: 0,
                        time2retain: 0,
                    }
                    .to_pdu(),
                );
                return;
            }
            // A NOP-Out answering a ping: nothing to say.
            (_, Ok(Message::NopOut(_))) => {}
            _ => return,
        }
    }
}

fn serve_conn(mut s: TcpStream, b: Behaviour) {
    let Some(first) = read_pdu(&mut s) else {
        return;
    };
    let Ok(req) = LoginRequest::from_pdu(&first) else {
        return;
    };
    match b {
        Behaviour::Status(status, kv) => send(&mut s, &login_response(&req, status, 0, &kv)),
        Behaviour::Silent => thread::sleep(Duration::from_secs(30)),
        Behaviour::Raw(bytes) => {
            let _ = s.write_all(&bytes);
            thread::sleep(Duration::from_millis(200));
        }
        Behaviour::ManyKeys { keys, ref seen, .. } => {
            if many_keys_login(&mut s, req, keys, seen).is_some() {
                full_feature(s, &b);
            }
        }
        Behaviour::Serve(_)
        | Behaviour::EndlessContinuations
        | Behaviour::DataInForever { .. }
        | Behaviour::NopFlood => {
            send(
                &mut s,
                &login_response(
                    &req,
                    0,
                    0x4242,
                    &[("TargetPortalGroupTag".into(), "1".into())],
                ),
            );
            full_feature(s, &b);
        }
    }
}

/// A peer whose behaviour depends on how many connections it has seen.
fn peer(script: impl Fn(usize, u16) -> Behaviour + Send + 'static) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            let b = script(n, port);
            thread::spawn(move || serve_conn(s, b));
        }
    });
    (port, count)
}

fn netboot(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_netboot"))
        .args(args)
        .output()
        .unwrap();
    (out, t0.elapsed())
}

fn text_of(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn records(port: u16) -> Vec<(String, String)> {
    vec![
        ("TargetName".into(), "iqn.2026-11.test:scripted".into()),
        ("TargetAddress".into(), format!("127.0.0.1:{port},1")),
    ]
}

#[test]
fn discover_follows_a_temporary_redirect() {
    let (b, b_count) = peer(move |_, _| Behaviour::Serve(records(3260)));
    let (a, a_count) = peer(move |_, _| {
        Behaviour::Status(
            0x0101,
            vec![("TargetAddress".into(), format!("127.0.0.1:{b},1"))],
        )
    });
    let (o, _) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{a}")]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "127.0.0.1:3260,1 iqn.2026-11.test:scripted\n");
    assert_eq!(
        (
            a_count.load(Ordering::SeqCst),
            b_count.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

#[test]
fn redirect_loop_gives_up() {
    // A permanent redirect to itself, forever.
    let (a, count) = peer(|_, me| {
        Behaviour::Status(
            0x0102,
            vec![("TargetAddress".into(), format!("127.0.0.1:{me},1"))],
        )
    });
    let (o, _) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{a}")]);
    let (_, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("gave up after 4 redirects"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 5, "first login + 4 redirects");
}

#[test]
fn redirect_without_address_is_an_error() {
    let (a, _) = peer(|_, _| Behaviour::Status(0x0101, vec![]));
    let (o, _) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{a}")]);
    let (_, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("redirected to unusable address"), "{err}");
}

#[test]
fn transient_target_error_is_retried() {
    let (p, count) = peer(move |n, _| {
        if n == 1 {
            Behaviour::Status(0x0301, vec![])
        } else {
            Behaviour::Serve(records(3260))
        }
    });
    let (o, _) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{p}")]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(out.contains("iqn.2026-11.test:scripted"));
    assert!(
        err.contains("netboot: WARN: ")
            && err.contains("service unavailable")
            && err.contains("retrying in 0.5s"),
        "the retry is reported on stderr: {err}"
    );
}

#[test]
fn persistent_target_error_fails_after_bounded_retries() {
    let (p, count) = peer(|_, _| Behaviour::Status(0x0302, vec![]));
    let (o, took) = netboot(&[
        "probe",
        "--timeout",
        "5",
        &format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x"),
    ]);
    let (_, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 3, "three attempts");
    assert!(err.contains("out of resources (status 0x0302)"), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "backoff 0.5 s + 1 s, took {took:?}"
    );
}

#[test]
fn target_not_found_fails_at_once() {
    let (p, count) = peer(|_, _| Behaviour::Status(0x0203, vec![]));
    let (o, _) = netboot(&[
        "probe",
        &format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:missing"),
    ]);
    let (_, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "netboot probe: login to iqn.2026-11.test:missing at 127.0.0.1:{p} failed: target iqn.2026-11.test:missing not found on this portal (status 0x0203)"
        )
    );
}

#[test]
fn silent_target_times_out() {
    let (p, _) = peer(|_, _| Behaviour::Silent);
    let (o, took) = netboot(&[
        "probe",
        "--timeout",
        "1",
        &format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x"),
    ]);
    let (_, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn garbage_answer_is_an_error_not_a_crash() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0xff; 48], // reserved stage bits, T and C together
        vec![0x23; 10], // short header, then EOF
        {
            let mut v = vec![0u8; 48];
            v[0] = 0x3f; // a Reject
            v
        },
    ];
    for bytes in cases {
        let (p, _) = peer(move |_, _| Behaviour::Raw(bytes.clone()));
        let (o, _) = netboot(&[
            "probe",
            "--timeout",
            "2",
            &format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x"),
        ]);
        let (_, err) = text_of(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with("netboot probe: "), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn endless_text_continuations_hit_the_text_budget() {
    let (p, _) = peer(|_, _| Behaviour::EndlessContinuations);
    let (o, took) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{p}")]);
    let (out, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err,
        format!(
            "netboot discover: discovery at 127.0.0.1:{p}: SendTargets: over budget: the target sent more than 1024 Text Responses in one text exchange\n"
        )
    );
    assert!(
        took < Duration::from_secs(5),
        "within the deadline: {took:?}"
    );
}

#[test]
fn data_in_without_status_hits_the_command_budget() {
    // Empty Data-In as fast as the peer can: the PDU budget.
    let (p, _) = peer(|_, _| Behaviour::DataInForever {
        len: 0,
        every: Duration::ZERO,
    });
    let root = format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x");
    let (o, took) = netboot(&["probe", "--timeout", "5", &root]);
    let (out, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err,
        format!(
            "netboot probe: target iqn.2026-11.test:x at 127.0.0.1:{p}: REPORT LUNS: over budget: the target sent more than 1024 Data-In PDUs in one command\n"
        )
    );
    assert!(
        took < Duration::from_secs(5),
        "within the deadline: {took:?}"
    );

    // The same 8 bytes again and again: the allocation length (REPORT LUNS
    // asks for 8 + 64 * 8 bytes).
    let (p, _) = peer(|_, _| Behaviour::DataInForever {
        len: 8,
        every: Duration::ZERO,
    });
    let root = format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x");
    let (o, _) = netboot(&["probe", "--timeout", "5", &root]);
    let (_, err) = text_of(&o);
    assert_eq!(
        err,
        format!(
            "netboot probe: target iqn.2026-11.test:x at 127.0.0.1:{p}: REPORT LUNS: over budget: the target sent more than 520 bytes of Data-In (the allocation length) in one command\n"
        )
    );
}

#[test]
fn slow_data_in_without_status_ends_at_the_deadline() {
    // One byte every 100 ms: every receive is answered well within the
    // timeout and no budget runs out, but the run has one deadline.
    let (p, _) = peer(|_, _| Behaviour::DataInForever {
        len: 1,
        every: Duration::from_millis(100),
    });
    let root = format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x");
    let (o, took) = netboot(&["probe", "--timeout", "1.5", &root]);
    let (out, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err,
        format!(
            "netboot probe: target iqn.2026-11.test:x at 127.0.0.1:{p}: REPORT LUNS: timed out after 1.5s, the deadline for the whole command\n"
        )
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(3),
        "ends at the deadline: {took:?}"
    );
}

#[test]
fn nop_in_flood_is_bounded() {
    let (p, _) = peer(|_, _| Behaviour::NopFlood);
    let root = format!("iscsi:127.0.0.1::{p}::iqn.2026-11.test:x");
    let (o, took) = netboot(&["probe", "--timeout", "5", &root]);
    let (out, err) = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err,
        format!(
            "netboot probe: target iqn.2026-11.test:x at 127.0.0.1:{p}: REPORT LUNS: over budget: the target sent more than 64 NOP-In and Async Message PDUs in one command\n"
        )
    );
    assert!(
        took < Duration::from_secs(5),
        "within the deadline: {took:?}"
    );
}

#[test]
fn answers_to_many_keys_are_split_at_8192_bytes() {
    const KEYS: usize = 1500;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let (p, _) = peer(move |_, port| Behaviour::ManyKeys {
        keys: KEYS,
        records: records(port),
        seen: s.clone(),
    });
    let (o, _) = netboot(&["discover", "--timeout", "5", &format!("127.0.0.1:{p}")]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert_eq!(out, format!("127.0.0.1:{p},1 iqn.2026-11.test:scripted\n"));
    let seen = seen.lock().unwrap();
    // The first request, one empty request per continued piece of the
    // target's offer, then our answer, piece by piece.
    let offer_pieces = text::encode(&vendor_keys(KEYS)).len().div_ceil(8192);
    let (fetches, answer) = seen[1..].split_at(offer_pieces - 1);
    assert!(fetches.iter().all(|r| r.data.is_empty() && !r.cont));
    assert!(answer.len() > 1, "{} pieces", answer.len());
    let (last, more) = answer.split_last().unwrap();
    for (i, r) in more.iter().enumerate() {
        assert!(
            r.cont && !r.transit && r.data.len() <= 8192,
            "piece {i}: C={} T={} {} bytes",
            r.cont,
            r.transit,
            r.data.len()
        );
    }
    assert!(!last.cont && last.transit && last.nsg == Stage::FullFeature);
    assert!(last.data.len() <= 8192);
    let whole: Vec<u8> = answer.iter().flat_map(|r| r.data.clone()).collect();
    assert!(whole.len() > 6 * 8192, "{} bytes in all", whole.len());
    let want: Vec<(String, String)> = vendor_keys(KEYS)
        .into_iter()
        .map(|(k, _)| (k, "NotUnderstood".to_string()))
        .collect();
    assert_eq!(text::parse(&whole).unwrap(), want);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["probe"],
        vec!["probe", "--timeout", "0", "iscsi:h::::iqn.x"],
        vec!["probe", "--bogus", "iscsi:h::::iqn.x"],
        vec!["discover", "[::1"],
        vec!["discover"],
    ] {
        let (o, _) = netboot(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text_of(&o).1);
    }
}
