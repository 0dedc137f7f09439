//! Tests from real bytes: PDUs captured between libiscsi and tgtd / istgt
//! (`tests/fixtures/capture.sh`, decoded in `tests/fixtures/README.md`).
//!
//! - every captured PDU decodes, types, and re-encodes to the same bytes;
//! - the captured targets' login responses drive our login machine to the
//!   end, with the values the capture shows;
//! - our CHAP response equals libiscsi's for the same identifier, secret and
//!   challenge, and the targets' mutual CHAP answers verify with our code;
//! - SendTargets, INQUIRY and READ CAPACITY(16) data parse to what the
//!   targets were configured with.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

use netboot::iscsi::chap;
use netboot::iscsi::client::parse_send_targets;
use netboot::iscsi::login::{AuthUsed, Login, LoginConfig, SessionType, Step};
use netboot::iscsi::pdu::{self, LoginRequest, LoginResponse, Message, Pdu};
use netboot::iscsi::{scsi, text};
use netboot::plan::{Chap, MutualChap, Secret};
use std::path::{Path, PathBuf};

const INITIATOR_SECRET: &str = "chapsecret1234";
const TARGET_SECRET: &str = "tgtsecret56789";
const DISK_BYTES: u64 = 64 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every capture folder (`<capture>-<n>-<session|discovery>`).
fn folders() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root())
        .expect("tests/fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            p.is_dir() && (n.ends_with("-session") || n.ends_with("-discovery"))
        })
        .collect();
    v.sort();
    v
}

/// The PDU files of one folder in capture order, with their bytes.
fn pdus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn decode(name: &str, bytes: &[u8]) -> Pdu {
    let (p, used) = Pdu::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(used, bytes.len(), "{name}: one PDU per file");
    p
}

fn keys(p: &Pdu) -> Vec<(String, String)> {
    text::parse(&p.data).unwrap()
}

fn key(p: &Pdu, k: &str) -> Option<String> {
    keys(p).into_iter().find(|(kk, _)| kk == k).map(|(_, v)| v)
}

#[test]
fn fixtures_exist_for_both_targets() {
    let names: Vec<String> = folders()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "tgtd-noauth-1-discovery",
        "tgtd-noauth-2-session",
        "tgtd-chap-1-session",
        "tgtd-mutual-1-session",
        "istgt-noauth-2-session",
        "istgt-chap-1-session",
        "istgt-mutual-1-session",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing fixture folder {want}; have {names:?}"
        );
    }
}

#[test]
fn every_captured_pdu_reencodes_byte_for_byte() {
    let mut count = 0;
    for dir in folders() {
        for (name, bytes) in pdus(&dir) {
            let label = format!("{}/{name}", dir.file_name().unwrap().to_string_lossy());
            let p = decode(&label, &bytes);
            // The file name carries the direction and opcode the capture saw.
            let init = name.contains("-i2t-");
            assert_eq!(
                p.opcode() < 0x20,
                init,
                "{label}: opcode {:#04x} in the wrong direction",
                p.opcode()
            );
            let m = Message::from_pdu(&p).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(
                !matches!(m, Message::Other(_)),
                "{label}: opcode {:#04x} not typed",
                p.opcode()
            );
            assert_eq!(
                m.to_pdu().encode().unwrap(),
                bytes,
                "{label}: typed re-encode differs"
            );
            count += 1;
        }
    }
    assert!(count >= 100, "only {count} PDUs captured");
}

/// Replays a captured target's login responses against our own machine:
/// our requests differ (ISID, ITT, our offers) so ISID/ITT are rewritten to
/// ours, as a live target would echo them.
fn replay(dir: &str, chap: Option<Chap>) -> (netboot::iscsi::login::LoginOutcome, Vec<Pdu>) {
    let files = pdus(&root().join(dir));
    let responses: Vec<Pdu> = files
        .iter()
        .filter(|(n, _)| n.ends_with("-login-rsp.bin"))
        .map(|(n, b)| decode(n, b))
        .collect();
    let mut cfg = LoginConfig::new(
        "iqn.2026-11.test:fixture-initiator",
        Some("iqn.2026-11.test:root"),
        SessionType::Normal,
    );
    cfg.chap = chap;
    cfg.itt = 0x1234;
    let (mut login, mut req) = Login::start(cfg).unwrap();
    let mut sent = vec![req.clone()];
    for r in responses {
        let ours = LoginRequest::from_pdu(&req).unwrap();
        let mut rsp = LoginResponse::from_pdu(&r).unwrap();
        rsp.itt = ours.itt;
        rsp.isid = ours.isid;
        match login
            .receive(&rsp.to_pdu())
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
        {
            Step::Send(next) => {
                req = next;
                sent.push(req.clone());
            }
            Step::Done(o) => return (o, sent),
        }
    }
    panic!("{dir}: login did not finish on the captured responses");
}

fn chap(mutual: bool) -> Option<Chap> {
    Some(Chap {
        username: "chapuser".into(),
        secret: Secret::new(INITIATOR_SECRET),
        mutual: mutual.then(|| MutualChap {
            username: "targetuser".into(),
            secret: Secret::new(TARGET_SECRET),
        }),
    })
}

#[test]
fn tgtd_noauth_login_replays() {
    let (o, _) = replay("tgtd-noauth-2-session", None);
    assert_eq!(o.auth, AuthUsed::None);
    assert_eq!(o.tsih, 256);
    assert_eq!(o.tpgt, Some(1));
    // tgt answers FirstBurstLength=65536 and InitialR2T=Yes (see README.md).
    assert_eq!(o.negotiated.first_burst_length, 65536);
    assert_eq!(o.negotiated.max_burst_length, 262144);
    assert!(o.negotiated.initial_r2t);
    assert_eq!(
        o.negotiated.max_xmit_data_segment_length, 8192,
        "tgt declares nothing: RFC default"
    );
}

#[test]
fn istgt_noauth_login_replays() {
    let (o, _) = replay("istgt-noauth-2-session", None);
    assert_eq!(o.auth, AuthUsed::None);
    assert!(o.tsih != 0);
    assert!(o.negotiated.max_xmit_data_segment_length >= 512);
}

#[test]
fn chap_logins_replay_on_both_targets() {
    for dir in ["tgtd-chap-1-session", "istgt-chap-1-session"] {
        let (o, sent) = replay(dir, chap(false));
        assert_eq!(o.auth, AuthUsed::Chap, "{dir}");
        // Our CHAP_R for the captured CHAP_I/CHAP_C is what libiscsi sent.
        let files = pdus(&root().join(dir));
        let libiscsi_r = files
            .iter()
            .map(|(n, b)| decode(n, b))
            .find_map(|p| {
                if p.opcode() == pdu::op::LOGIN {
                    key(&p, "CHAP_R")
                } else {
                    None
                }
            })
            .unwrap();
        let ours_r = sent.iter().find_map(|p| key(p, "CHAP_R")).unwrap();
        assert_eq!(
            ours_r.to_ascii_lowercase(),
            libiscsi_r.to_ascii_lowercase(),
            "{dir}"
        );
    }
}

#[test]
fn wrong_secret_capture_is_an_authentication_failure() {
    for dir in ["tgtd-chap-2-session", "istgt-chap-2-session"] {
        let files = pdus(&root().join(dir));
        let last = files
            .iter()
            .rev()
            .find(|(n, _)| n.ends_with("-login-rsp.bin"))
            .unwrap();
        let rsp = LoginResponse::from_pdu(&decode(&last.0, &last.1)).unwrap();
        assert_eq!(rsp.status(), 0x0201, "{dir}");
    }
}

/// The initiator's (libiscsi's) challenge and the target's answer, checked
/// with our verifier: proves our mutual CHAP check accepts real targets and
/// refuses a wrong secret.
#[test]
fn targets_mutual_chap_answers_verify() {
    for dir in ["tgtd-mutual-1-session", "istgt-mutual-1-session"] {
        let all: Vec<Pdu> = pdus(&root().join(dir))
            .iter()
            .map(|(n, b)| decode(n, b))
            .collect();
        let req = all
            .iter()
            .find(|p| p.opcode() == pdu::op::LOGIN && key(p, "CHAP_C").is_some())
            .unwrap();
        let id: u8 = key(req, "CHAP_I").unwrap().parse().unwrap();
        let c = chap::decode_binary("CHAP_C", &key(req, "CHAP_C").unwrap()).unwrap();
        let answer = all
            .iter()
            .find(|p| p.opcode() == pdu::op::LOGIN_RSP && key(p, "CHAP_N").is_some())
            .unwrap();
        let get = |k: &str| key(answer, k);
        chap::verify_target(id, &c, "targetuser", TARGET_SECRET.as_bytes(), get)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(
            chap::verify_target(id, &c, "targetuser", b"not-the-secret", get).is_err(),
            "{dir}"
        );
        // And the target's own challenge: our response equals libiscsi's.
        let tc = all
            .iter()
            .find(|p| p.opcode() == pdu::op::LOGIN_RSP && key(p, "CHAP_C").is_some())
            .unwrap();
        let t = chap::read_challenge(|k| key(tc, k)).unwrap();
        let r = chap::encode_hex(&chap::response(
            t.id,
            INITIATOR_SECRET.as_bytes(),
            &t.challenge,
        ));
        assert_eq!(
            r.to_ascii_lowercase(),
            key(req, "CHAP_R").unwrap().to_ascii_lowercase(),
            "{dir}"
        );
    }
}

#[test]
fn istgt_long_challenge_is_accepted() {
    // istgt sends a 1024-byte CHAP_C: the RFC 7143 maximum.
    let all: Vec<Pdu> = pdus(&root().join("istgt-chap-1-session"))
        .iter()
        .map(|(n, b)| decode(n, b))
        .collect();
    let tc = all
        .iter()
        .find(|p| p.opcode() == pdu::op::LOGIN_RSP && key(p, "CHAP_C").is_some())
        .unwrap();
    let t = chap::read_challenge(|k| key(tc, k)).unwrap();
    assert_eq!(t.challenge.len(), 1024);
}

#[test]
fn send_targets_response_parses() {
    let files = pdus(&root().join("tgtd-noauth-1-discovery"));
    let (n, b) = files
        .iter()
        .find(|(n, _)| n.ends_with("-text-rsp.bin"))
        .unwrap();
    let rsp = decode(n, b);
    let t = parse_send_targets(&keys(&rsp), 3260);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].target, "iqn.2026-11.test:root");
    assert_eq!(
        (
            t[0].portals[0].address.as_str(),
            t[0].portals[0].port,
            t[0].portals[0].tpgt
        ),
        ("127.0.0.1", 13260, Some(1))
    );
}

/// Data-In payloads that answer INQUIRY and READ CAPACITY(16), matched to
/// their commands by ITT.
#[test]
fn scsi_data_parses() {
    let mut found_capacity = 0;
    for dir in folders() {
        let all: Vec<Pdu> = pdus(&dir).iter().map(|(n, b)| decode(n, b)).collect();
        for cmd in all.iter().filter(|p| p.opcode() == pdu::op::SCSI_CMD) {
            let Message::ScsiCommand(c) = Message::from_pdu(cmd).unwrap() else {
                unreachable!()
            };
            let data: Vec<u8> = all
                .iter()
                .filter_map(|p| match Message::from_pdu(p).ok()? {
                    Message::DataIn(d) if d.itt == c.itt => Some(d.data),
                    _ => None,
                })
                .flatten()
                .collect();
            match (c.cdb[0], c.cdb[1] & 0x1f) {
                (scsi::INQUIRY, _) if data.len() >= 36 => {
                    let i = scsi::parse_inquiry(&data).unwrap();
                    assert!(!i.vendor.is_empty(), "{}: {i:?}", dir.display());
                }
                (scsi::SERVICE_ACTION_IN_16, scsi::READ_CAPACITY_16) if !data.is_empty() => {
                    let cap = scsi::parse_read_capacity16(&data).unwrap();
                    assert_eq!(cap.bytes(), DISK_BYTES, "{}", dir.display());
                    found_capacity += 1;
                }
                (scsi::REPORT_LUNS, _) if data.len() >= 8 => {
                    let luns = scsi::parse_report_luns(&data).unwrap();
                    assert!(!luns.is_empty(), "{}", dir.display());
                }
                _ => {}
            }
        }
    }
    assert!(
        found_capacity >= 2,
        "READ CAPACITY(16) seen {found_capacity} times"
    );
}
