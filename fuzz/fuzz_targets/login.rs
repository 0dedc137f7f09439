//! The login machine fed arbitrary target responses: it must answer or fail
//! with an error, never panic or loop forever, never send a PDU over 8192
//! bytes and never run past its PDU budget.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::iscsi::login::{Login, LoginConfig, SessionType, Step, MAX_ROUNDS};
use netboot::iscsi::pdu::Pdu;
use netboot::iscsi::text;
use netboot::plan::{Chap, MutualChap, Secret};

fuzz_target!(|data: &[u8]| {
    let mut cfg = LoginConfig::new("iqn.i", Some("iqn.t"), SessionType::Normal);
    if data.first().is_some_and(|b| b & 1 == 1) {
        cfg.chap = Some(Chap {
            username: "u".into(),
            secret: Secret::new("s"),
            mutual: Some(MutualChap { username: "t".into(), secret: Secret::new("ts") }),
        });
    }
    if data.first().is_some_and(|b| b & 2 == 2) {
        // Offers past 8192 bytes: the first request goes out in pieces,
        // and every response meets the continued-request path first.
        let many: Vec<(String, String)> =
            (0..400).map(|i| (format!("X-fuzz.key-{i:03}"), "v".repeat(20))).collect();
        let _ = cfg.apply_overrides(&many);
    }
    let Ok((mut login, first)) = Login::start(cfg) else { return };
    // Every PDU we send stays within the login limit (RFC 7143 §6.1 split).
    assert!(first.data.len() <= text::LOGIN_DATA_SEGMENT);
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut rounds = 0;
    while let Ok((pdu, used)) = Pdu::decode(rest) {
        rest = &rest[used..];
        rounds += 1;
        // The PDU budget: no input keeps the machine going past it.
        assert!(rounds <= MAX_ROUNDS + 1);
        match login.receive(&pdu) {
            Ok(Step::Send(next)) => assert!(next.data.len() <= text::LOGIN_DATA_SEGMENT),
            Ok(Step::Done(_)) | Err(_) => return,
        }
    }
});
