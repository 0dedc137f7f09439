//! The login machine fed arbitrary target responses: it must answer or fail
//! with an error, never panic or loop forever.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netboot::iscsi::login::{Login, LoginConfig, SessionType, Step};
use netboot::iscsi::pdu::Pdu;
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
    let Ok((mut login, _)) = Login::start(cfg) else { return };
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Ok((pdu, used)) = Pdu::decode(rest) {
        rest = &rest[used..];
        match login.receive(&pdu) {
            Ok(Step::Send(_)) => {}
            Ok(Step::Done(_)) | Err(_) => return,
        }
    }
});
