//! `netboot discover` / `netboot probe` against small scripted iSCSI peers on
//! loopback: the behaviours tgtd and istgt cannot be made to show on demand —
//! login redirects (0x0101/0x0102), transient target errors (0x03xx), a
//! target that never answers, and a target that sends garbage.
//!
//! Each peer is a thread on 127.0.0.1:0 that answers by script. No root needed.

use netboot::iscsi::pdu::{
    self, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, Message, Pdu, Stage,
    TargetSn, TextRequest, TextResponse, BHS_LEN,
};
use netboot::iscsi::text;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
}

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
        Behaviour::Serve(records) => {
            send(
                &mut s,
                &login_response(
                    &req,
                    0,
                    0x4242,
                    &[("TargetPortalGroupTag".into(), "1".into())],
                ),
            );
            let mut stat_sn = 2;
            while let Some(p) = read_pdu(&mut s) {
                let sn = TargetSn {
                    stat_sn,
                    exp_cmd_sn: 2,
                    max_cmd_sn: 10,
                };
                stat_sn += 1;
                match Message::from_pdu(&p) {
                    Ok(Message::TextRequest(TextRequest { itt, .. })) => send(
                        &mut s,
                        &TextResponse {
                            final_: true,
                            cont: false,
                            lun: 0,
                            itt,
                            ttt: pdu::RESERVED_TAG,
                            sn,
                            data: text::encode(&records),
                        }
                        .to_pdu(),
                    ),
                    Ok(Message::LogoutRequest(LogoutRequest { itt, .. })) => {
                        send(
                            &mut s,
                            &LogoutResponse {
                                response: 0,
                                itt,
                                sn,
                                time2wait: 0,
                                time2retain: 0,
                            }
                            .to_pdu(),
                        );
                        return;
                    }
                    _ => return,
                }
            }
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
