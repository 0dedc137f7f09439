//! Login machine against a scripted target: every request is checked and
//! every response built by hand, so each RFC 7143 rule is exercised.

use super::*;
use crate::iscsi::chap;
use crate::iscsi::pdu::{LoginRequest, LoginResponse, Stage, TargetSn};
use crate::iscsi::text;
use crate::plan::{Chap, MutualChap, Secret};

fn cfg() -> LoginConfig {
    let mut c = LoginConfig::new(
        "iqn.2026-11.test:init",
        Some("iqn.2026-11.test:root"),
        SessionType::Normal,
    );
    c.itt = 0x11;
    c
}

fn chap_cfg(mutual: bool) -> LoginConfig {
    let mut c = cfg();
    c.chap = Some(Chap {
        username: "chapuser".into(),
        secret: Secret::new("chapsecret1234"),
        mutual: mutual.then(|| MutualChap {
            username: "tuser".into(),
            secret: Secret::new("tsecret12345"),
        }),
    });
    c
}

fn keys(p: &Pdu) -> Vec<(String, String)> {
    text::parse(&p.data).unwrap()
}

fn val(p: &Pdu, k: &str) -> Option<String> {
    keys(p).into_iter().find(|(kk, _)| kk == k).map(|(_, v)| v)
}

/// A target response to `req` with the given stage flags, status and keys.
fn rsp(
    req: &Pdu,
    transit: bool,
    csg: Stage,
    nsg: Stage,
    status: u16,
    tsih: u16,
    kv: &[(&str, &str)],
) -> Pdu {
    let r = LoginRequest::from_pdu(req).unwrap();
    LoginResponse {
        transit,
        cont: false,
        csg,
        nsg: if transit { nsg } else { csg },
        version_max: 0,
        version_active: 0,
        isid: r.isid,
        tsih,
        itt: r.itt,
        sn: TargetSn {
            stat_sn: 5,
            exp_cmd_sn: r.cmd_sn,
            max_cmd_sn: r.cmd_sn + 31,
        },
        status_class: (status >> 8) as u8,
        status_detail: status as u8,
        data: text::encode(kv),
    }
    .to_pdu()
}

fn send(step: Step) -> Pdu {
    match step {
        Step::Send(p) => p,
        Step::Done(_) => panic!("login finished early"),
    }
}

fn done(step: Step) -> LoginOutcome {
    match step {
        Step::Done(o) => o,
        Step::Send(p) => panic!(
            "expected the end of login, got another request: {:?}",
            keys(&p)
        ),
    }
}

const TGT_ANSWERS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxConnections", "1"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "8192"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
    ("TargetPortalGroupTag", "1"),
    ("TargetAlias", "root disk"),
];

#[test]
fn no_auth_goes_straight_to_operational() {
    let (mut l, first) = Login::start(cfg()).unwrap();
    let r = LoginRequest::from_pdu(&first).unwrap();
    assert_eq!(
        (r.transit, r.csg, r.nsg),
        (true, Stage::Operational, Stage::FullFeature)
    );
    assert_eq!(first.bhs[0], 0x43);
    assert_eq!(
        val(&first, "InitiatorName").as_deref(),
        Some("iqn.2026-11.test:init")
    );
    assert_eq!(
        val(&first, "TargetName").as_deref(),
        Some("iqn.2026-11.test:root")
    );
    assert_eq!(val(&first, "SessionType").as_deref(), Some("Normal"));
    assert_eq!(
        val(&first, "AuthMethod"),
        None,
        "no security stage without CHAP"
    );
    assert_eq!(
        val(&first, "MaxRecvDataSegmentLength").as_deref(),
        Some("262144")
    );
    let o = done(
        l.receive(&rsp(
            &first,
            true,
            Stage::Operational,
            Stage::FullFeature,
            0,
            7,
            TGT_ANSWERS,
        ))
        .unwrap(),
    );
    assert_eq!(o.tsih, 7);
    assert_eq!(o.exp_stat_sn, 6);
    assert_eq!(o.negotiated.max_xmit_data_segment_length, 8192);
    assert_eq!(o.negotiated.max_recv_data_segment_length, 262144);
    assert_eq!(o.negotiated.max_burst_length, 262144);
    assert_eq!(o.negotiated.first_burst_length, 65536);
    assert!(o.negotiated.initial_r2t && o.negotiated.immediate_data);
    assert_eq!(o.tpgt, Some(1));
    assert_eq!(o.target_alias.as_deref(), Some("root disk"));
    assert_eq!(o.auth, AuthUsed::None);
}

#[test]
fn one_way_chap_exchange() {
    let (mut l, p1) = Login::start(chap_cfg(false)).unwrap();
    let r1 = LoginRequest::from_pdu(&p1).unwrap();
    assert_eq!(
        (r1.transit, r1.csg, r1.nsg),
        (true, Stage::Security, Stage::Operational)
    );
    assert_eq!(val(&p1, "AuthMethod").as_deref(), Some("CHAP,None"));
    let p2 = send(
        l.receive(&rsp(
            &p1,
            false,
            Stage::Security,
            Stage::Security,
            0,
            0,
            &[("AuthMethod", "CHAP")],
        ))
        .unwrap(),
    );
    assert_eq!(val(&p2, "CHAP_A").as_deref(), Some("5"));
    assert!(!LoginRequest::from_pdu(&p2).unwrap().transit);
    let challenge = [0xa5u8; 16];
    let p3 = send(
        l.receive(&rsp(
            &p2,
            false,
            Stage::Security,
            Stage::Security,
            0,
            0,
            &[
                ("CHAP_A", "5"),
                ("CHAP_I", "42"),
                ("CHAP_C", &chap::encode_hex(&challenge)),
            ],
        ))
        .unwrap(),
    );
    assert_eq!(val(&p3, "CHAP_N").as_deref(), Some("chapuser"));
    let want = chap::encode_hex(&chap::response(42, b"chapsecret1234", &challenge));
    assert_eq!(val(&p3, "CHAP_R"), Some(want));
    assert_eq!(
        val(&p3, "CHAP_C"),
        None,
        "no challenge of ours without mutual CHAP"
    );
    assert!(!String::from_utf8_lossy(&p3.data).contains("chapsecret1234"));
    let r3 = LoginRequest::from_pdu(&p3).unwrap();
    assert_eq!((r3.transit, r3.nsg), (true, Stage::Operational));
    let p4 = send(
        l.receive(&rsp(
            &p3,
            true,
            Stage::Security,
            Stage::Operational,
            0,
            0,
            &[],
        ))
        .unwrap(),
    );
    let r4 = LoginRequest::from_pdu(&p4).unwrap();
    assert_eq!((r4.csg, r4.nsg), (Stage::Operational, Stage::FullFeature));
    assert_eq!(r4.exp_stat_sn, 6, "ExpStatSN follows the target's StatSN");
    let o = done(
        l.receive(&rsp(
            &p4,
            true,
            Stage::Operational,
            Stage::FullFeature,
            0,
            9,
            TGT_ANSWERS,
        ))
        .unwrap(),
    );
    assert_eq!(o.auth, AuthUsed::Chap);
}

/// Runs a mutual CHAP login up to the target's final security answer.
fn mutual_until_answer(target_secret: &[u8], name: &str) -> Result<Step, LoginError> {
    let (mut l, p1) = Login::start(chap_cfg(true)).unwrap();
    assert_eq!(
        val(&p1, "AuthMethod").as_deref(),
        Some("CHAP"),
        "mutual CHAP may not fall back to None"
    );
    let p2 = send(
        l.receive(&rsp(
            &p1,
            false,
            Stage::Security,
            Stage::Security,
            0,
            0,
            &[("AuthMethod", "CHAP")],
        ))
        .unwrap(),
    );
    let p3 = send(
        l.receive(&rsp(
            &p2,
            false,
            Stage::Security,
            Stage::Security,
            0,
            0,
            &[
                ("CHAP_A", "5"),
                ("CHAP_I", "1"),
                ("CHAP_C", "0x0102030405060708090a0b0c0d0e0f10"),
            ],
        ))
        .unwrap(),
    );
    let id: u8 = val(&p3, "CHAP_I").unwrap().parse().unwrap();
    let c = chap::decode_binary("CHAP_C", &val(&p3, "CHAP_C").unwrap()).unwrap();
    assert_eq!(c.len(), chap::CHALLENGE_LEN);
    let r = chap::encode_hex(&chap::response(id, target_secret, &c));
    l.receive(&rsp(
        &p3,
        true,
        Stage::Security,
        Stage::Operational,
        0,
        0,
        &[("CHAP_N", name), ("CHAP_R", &r)],
    ))
}

#[test]
fn mutual_chap_verifies_the_target() {
    let step = mutual_until_answer(b"tsecret12345", "tuser").unwrap();
    let p4 = send(step);
    assert_eq!(LoginRequest::from_pdu(&p4).unwrap().csg, Stage::Operational);
}

#[test]
fn mutual_chap_wrong_target_secret_fails() {
    let e = mutual_until_answer(b"not-the-secret", "tuser").unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, LoginError::Chap(chap::ChapError::TargetResponse { .. })),
        "{msg}"
    );
    assert!(msg.contains("mutual") && msg.contains("tuser"), "{msg}");
    assert!(
        !msg.contains("tsecret12345") && !msg.contains("chapsecret1234"),
        "{msg}"
    );
}

#[test]
fn mutual_chap_wrong_target_name_fails() {
    let e = mutual_until_answer(b"tsecret12345", "impostor").unwrap_err();
    assert!(
        matches!(e, LoginError::Chap(chap::ChapError::TargetName { .. })),
        "{e}"
    );
}

#[test]
fn mutual_chap_refuses_auth_none() {
    let (mut l, p1) = Login::start(chap_cfg(true)).unwrap();
    let e = l
        .receive(&rsp(
            &p1,
            true,
            Stage::Security,
            Stage::Operational,
            0,
            0,
            &[("AuthMethod", "None")],
        ))
        .unwrap_err();
    assert!(matches!(e, LoginError::AuthMethod { .. }), "{e}");
    assert!(
        e.to_string().ends_with(
            "answered \"None\"; mutual CHAP authenticates the target and cannot be skipped"
        ),
        "{e}"
    );
}

#[test]
fn one_way_chap_auth_method_reject_is_named() {
    let (mut l, p1) = Login::start(chap_cfg(false)).unwrap();
    let e = l
        .receive(&rsp(
            &p1,
            false,
            Stage::Security,
            Stage::Security,
            0,
            0,
            &[("AuthMethod", "Reject")],
        ))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "we offered AuthMethod=CHAP,None but the target answered \"Reject\""
    );
}

#[test]
fn one_way_chap_accepts_auth_none() {
    let (mut l, p1) = Login::start(chap_cfg(false)).unwrap();
    let p2 = send(
        l.receive(&rsp(
            &p1,
            true,
            Stage::Security,
            Stage::Operational,
            0,
            0,
            &[("AuthMethod", "None")],
        ))
        .unwrap(),
    );
    assert_eq!(LoginRequest::from_pdu(&p2).unwrap().csg, Stage::Operational);
}

#[test]
fn auth_failure_names_user_and_target_never_secret() {
    let (mut l, p1) = Login::start(chap_cfg(false)).unwrap();
    let e = l
        .receive(&rsp(
            &p1,
            true,
            Stage::Security,
            Stage::Operational,
            0x0201,
            0,
            &[],
        ))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("authentication failed") && msg.contains("chapuser"),
        "{msg}"
    );
    assert!(msg.contains("iqn.2026-11.test:root"), "{msg}");
    assert!(!msg.contains("chapsecret1234"), "{msg}");
    assert!(!e.is_transient());
}

#[test]
fn auth_required_without_credentials_gives_a_hint() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let e = l
        .receive(&rsp(
            &p1,
            true,
            Stage::Operational,
            Stage::FullFeature,
            0x0201,
            0,
            &[],
        ))
        .unwrap_err();
    assert!(matches!(e, LoginError::AuthenticationRequired { .. }));
    assert!(e.to_string().contains("Hint"));
}

#[test]
fn statuses_map_to_errors() {
    type Check = fn(&LoginError) -> bool;
    let cases: &[(u16, Check)] = &[
        (0x0203, |e| matches!(e, LoginError::TargetNotFound { .. })),
        (0x0205, |e| {
            matches!(e, LoginError::InitiatorError { status: 0x0205, .. })
        }),
        (0x0300, |e| e.is_transient()),
        (0x0301, |e| e.is_transient()),
        (0x0302, |e| e.is_transient()),
        (0x0401, |e| matches!(e, LoginError::Status { .. })),
        (0x0101, |e| matches!(e, LoginError::BadRedirect { .. })),
    ];
    for (status, check) in cases {
        let (mut l, p1) = Login::start(cfg()).unwrap();
        let e = l
            .receive(&rsp(
                &p1,
                true,
                Stage::Operational,
                Stage::FullFeature,
                *status,
                0,
                &[],
            ))
            .unwrap_err();
        assert!(check(&e), "status {status:#06x} gave {e:?}");
    }
}

#[test]
fn redirect_carries_the_address() {
    for (status, permanent) in [(0x0101, false), (0x0102, true)] {
        let (mut l, p1) = Login::start(cfg()).unwrap();
        let e = l
            .receive(&rsp(
                &p1,
                true,
                Stage::Operational,
                Stage::FullFeature,
                status,
                0,
                &[("TargetAddress", "[::1]:3262,2")],
            ))
            .unwrap_err();
        match e {
            LoginError::Redirect {
                address,
                permanent: p,
            } => {
                assert_eq!(address, "[::1]:3262,2");
                assert_eq!(p, permanent);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn continued_response_is_joined() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let whole = text::encode(TGT_ANSWERS);
    let (a, b) = whole.split_at(37); // splits a key in the middle
    let mut first = LoginResponse::from_pdu(&rsp(
        &p1,
        false,
        Stage::Operational,
        Stage::Operational,
        0,
        0,
        &[],
    ))
    .unwrap();
    first.cont = true;
    first.data = a.to_vec();
    let p2 = send(l.receive(&first.to_pdu()).unwrap());
    let r2 = LoginRequest::from_pdu(&p2).unwrap();
    assert!(
        p2.data.is_empty() && !r2.transit,
        "empty request to fetch the rest"
    );
    let mut second = LoginResponse::from_pdu(&rsp(
        &p2,
        true,
        Stage::Operational,
        Stage::FullFeature,
        0,
        3,
        &[],
    ))
    .unwrap();
    second.data = b.to_vec();
    let o = done(l.receive(&second.to_pdu()).unwrap());
    assert_eq!(o.negotiated.max_burst_length, 262144);
}

#[test]
fn target_offers_are_answered_unknown_ones_not_understood() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let p2 = send(
        l.receive(&rsp(
            &p1,
            false,
            Stage::Operational,
            Stage::Operational,
            0,
            0,
            &[
                ("X-com.example.Frob", "1"),
                ("IFMarker", "No"),
                ("HeaderDigest", "None"),
            ],
        ))
        .unwrap(),
    );
    assert_eq!(
        val(&p2, "X-com.example.Frob").as_deref(),
        Some("NotUnderstood")
    );
    assert_eq!(val(&p2, "IFMarker").as_deref(), Some("No"));
    assert_eq!(
        val(&p2, "HeaderDigest"),
        None,
        "answers to our offers are not answered back"
    );
    assert!(LoginRequest::from_pdu(&p2).unwrap().transit);
}

#[test]
fn illegal_answer_fails_negotiation() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let e = l
        .receive(&rsp(
            &p1,
            true,
            Stage::Operational,
            Stage::FullFeature,
            0,
            1,
            &[("MaxBurstLength", "99999999")],
        ))
        .unwrap_err();
    assert!(matches!(e, LoginError::Negotiation(_)), "{e}");
    assert!(e.to_string().contains("MaxBurstLength"));
}

#[test]
fn protocol_violations() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let mut bad = LoginResponse::from_pdu(&rsp(
        &p1,
        true,
        Stage::Operational,
        Stage::FullFeature,
        0,
        1,
        &[],
    ))
    .unwrap();
    bad.itt = 99;
    assert!(matches!(
        l.receive(&bad.to_pdu()),
        Err(LoginError::ItTMismatch { .. })
    ));

    let (mut l, p1) = Login::start(cfg()).unwrap();
    let wrong_stage = rsp(&p1, true, Stage::Security, Stage::FullFeature, 0, 1, &[]);
    assert!(matches!(
        l.receive(&wrong_stage),
        Err(LoginError::StageMismatch { .. })
    ));

    let (mut l, p1) = Login::start(cfg()).unwrap();
    let no_tsih = rsp(&p1, true, Stage::Operational, Stage::FullFeature, 0, 0, &[]);
    assert!(matches!(l.receive(&no_tsih), Err(LoginError::NoTsih)));

    let (mut l, _) = Login::start(cfg()).unwrap();
    let reject = crate::iscsi::pdu::Reject {
        reason: 4,
        sn: TargetSn::default(),
        data_sn: 0,
        data: vec![],
    };
    assert!(matches!(
        l.receive(&reject.to_pdu()),
        Err(LoginError::Rejected { reason: 4 })
    ));

    let mut c = cfg();
    c.target_name = None;
    assert!(matches!(Login::start(c), Err(LoginError::NoTargetName)));
}

#[test]
fn endless_target_is_cut_off() {
    let (mut l, mut p) = Login::start(cfg()).unwrap();
    for i in 0..=MAX_ROUNDS {
        match l.receive(&rsp(
            &p,
            false,
            Stage::Operational,
            Stage::Operational,
            0,
            0,
            &[],
        )) {
            Ok(Step::Send(next)) => p = next,
            Err(LoginError::TooManyRounds) => {
                assert_eq!(i, MAX_ROUNDS);
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("never cut off");
}

/// `n` vendor keys `X-com.example.PREFIX-NNNN`, as a target might offer
/// them (answered NotUnderstood) or as overrides offer them.
fn vendor_keys(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("X-com.example.{prefix}-{i:04}"),
                format!("value-{i}"),
            )
        })
        .collect()
}

/// A response to `req` carrying `data` as given, with the C bit as asked.
fn rsp_data(req: &Pdu, transit: bool, cont: bool, tsih: u16, data: Vec<u8>) -> Pdu {
    let stage = LoginRequest::from_pdu(req).unwrap().csg;
    let mut r =
        LoginResponse::from_pdu(&rsp(req, transit, stage, Stage::FullFeature, 0, tsih, &[]))
            .unwrap();
    r.cont = cont;
    r.data = data;
    r.to_pdu()
}

/// Sends the target's (empty) answer to each continued request of ours
/// until a request without the C bit; returns every piece, in order.
fn collect_pieces(l: &mut Login, first: Pdu) -> Vec<LoginRequest> {
    let mut pieces = vec![LoginRequest::from_pdu(&first).unwrap()];
    while pieces.last().unwrap().cont {
        let last = pieces.last().unwrap().to_pdu();
        let next = send(
            l.receive(&rsp_data(&last, false, false, 0, vec![]))
                .unwrap(),
        );
        pieces.push(LoginRequest::from_pdu(&next).unwrap());
    }
    pieces
}

fn assert_split(pieces: &[LoginRequest], limit: usize) {
    let (last, more) = pieces.split_last().unwrap();
    for (i, p) in more.iter().enumerate() {
        assert!(p.cont && !p.transit, "piece {i}: C=1, T=0");
        assert!(
            p.data.len() <= limit,
            "piece {i}: {} > {limit}",
            p.data.len()
        );
        assert_eq!(p.csg, last.csg, "piece {i} stays in the stage");
    }
    assert!(!last.cont && last.data.len() <= limit);
}

#[test]
fn many_target_keys_are_answered_in_pdus_within_8192_bytes() {
    let (mut l, p1) = Login::start(cfg()).unwrap();
    let offered = vendor_keys("key", 800);
    let text = text::encode(&offered);
    assert!(text.len() > 3 * 8192, "the target's text spans PDUs too");
    // The target's offer comes in 8192-byte pieces; we fetch each.
    let mut req = p1;
    let chunks = text::split_segments(&text, 8192);
    for (i, c) in chunks.iter().enumerate() {
        let more = i + 1 < chunks.len();
        let step = l
            .receive(&rsp_data(&req, false, more, 0, c.to_vec()))
            .unwrap();
        req = send(step);
        if more {
            assert!(req.data.is_empty(), "empty request for the rest");
        }
    }
    let pieces = collect_pieces(&mut l, req);
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    assert_split(&pieces, 8192);
    let last = pieces.last().unwrap();
    assert!(last.transit && last.nsg == Stage::FullFeature);
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.data.clone()).collect();
    let answers = text::parse(&whole).unwrap();
    let want: Vec<(String, String)> = offered
        .iter()
        .map(|(k, _)| (k.clone(), "NotUnderstood".to_string()))
        .collect();
    assert_eq!(answers, want, "every key answered once, in order");
    let o = done(
        l.receive(&rsp(
            &last.to_pdu(),
            true,
            Stage::Operational,
            Stage::FullFeature,
            0,
            5,
            TGT_ANSWERS,
        ))
        .unwrap(),
    );
    assert_eq!(o.tsih, 5);
}

#[test]
fn first_request_is_split_and_declared_limit_is_honoured() {
    let mut c = cfg();
    c.apply_overrides(&vendor_keys("ours", 600)).unwrap();
    let (mut l, p1) = Login::start(c).unwrap();
    let pieces = collect_pieces(&mut l, p1);
    assert_split(&pieces, 8192);
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.data.clone()).collect();
    assert_eq!(
        text::parse(&whole).unwrap().len(),
        3 + 14 + 600,
        "names, defaults and every override"
    );
    // The target declares 1024 (and offers keys): our answer follows it.
    let last = pieces.last().unwrap().to_pdu();
    let mut kv: Vec<(String, String)> = vec![("MaxRecvDataSegmentLength".into(), "1024".into())];
    kv.extend(vendor_keys("theirs", 100));
    let next = send(
        l.receive(&rsp_data(&last, false, false, 0, text::encode(&kv)))
            .unwrap(),
    );
    let pieces = collect_pieces(&mut l, next);
    assert!(pieces.len() > 2);
    assert_split(&pieces, 1024);
}

#[test]
fn continued_request_needs_an_empty_answer() {
    let mut c = cfg();
    c.apply_overrides(&vendor_keys("ours", 600)).unwrap();
    for (data, cont, want) in [
        (
            b"X-a=1\0".to_vec(),
            false,
            "target answered our continued login request with 6 bytes of text, not the empty response RFC 7143 §6.1 asks for",
        ),
        (
            vec![],
            true,
            "target answered our continued login request with 0 bytes of text and the C bit, not the empty response RFC 7143 §6.1 asks for",
        ),
    ] {
        let (mut l, p1) = Login::start(c.clone()).unwrap();
        assert!(LoginRequest::from_pdu(&p1).unwrap().cont);
        let e = l.receive(&rsp_data(&p1, false, cont, 0, data)).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn unsolicited_pdus_during_login_end_it_and_count() {
    use crate::iscsi::pdu::{AsyncMessage, NopIn, RESERVED_TAG};
    let nop = NopIn {
        lun: 0,
        itt: RESERVED_TAG,
        ttt: 7,
        sn: TargetSn::default(),
        data: vec![],
    }
    .to_pdu();
    let (mut l, _) = Login::start(cfg()).unwrap();
    let e = l.receive(&nop).unwrap_err();
    assert_eq!(e.to_string(), "target sent a NOP-In (0x20) during login");
    // Even at the end of the budget: the PDU is counted before it is looked at.
    let (mut l, mut p) = Login::start(cfg()).unwrap();
    for _ in 1..MAX_ROUNDS {
        p = send(l.receive(&rsp_data(&p, false, true, 0, vec![])).unwrap());
    }
    let e = l.receive(&nop).unwrap_err();
    assert!(
        matches!(e, LoginError::UnexpectedPdu { opcode: 0x20 }),
        "{e}"
    );
    let (mut l, _) = Login::start(cfg()).unwrap();
    let async_msg = AsyncMessage {
        lun: 0,
        sn: TargetSn::default(),
        event: 4,
        vcode: 0,
        params: [0; 3],
        data: vec![],
    }
    .to_pdu();
    let e = l.receive(&async_msg).unwrap_err();
    assert!(
        matches!(e, LoginError::UnexpectedPdu { opcode: 0x32 }),
        "{e}"
    );
}

#[test]
fn endless_empty_continuations_hit_the_pdu_budget() {
    let (mut l, mut p) = Login::start(cfg()).unwrap();
    let mut n = 0;
    let e = loop {
        n += 1;
        match l.receive(&rsp_data(&p, false, true, 0, vec![])) {
            Ok(Step::Send(next)) => p = next,
            Ok(Step::Done(_)) => panic!("done"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, MAX_ROUNDS + 1);
    assert_eq!(
        e.to_string(),
        "login did not complete within its budget of 64 PDUs from the target"
    );
}

#[test]
fn repeated_large_responses_hit_the_byte_budget() {
    // Answers to keys already settled need no reply: the target can keep
    // sending them in T=0 responses, 7 KiB at a time.
    let repeats = vec![("HeaderDigest", "None"); 7 * 1024 / 18];
    let (mut l, mut p) = Login::start(cfg()).unwrap();
    let e = loop {
        let r = rsp(
            &p,
            false,
            Stage::Operational,
            Stage::Operational,
            0,
            0,
            &repeats,
        );
        match l.receive(&r) {
            Ok(Step::Send(next)) => p = next,
            Ok(Step::Done(_)) => panic!("done"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        e.to_string(),
        "target sent more than the login's budget of 262144 bytes of text"
    );
}

#[test]
fn discovery_session_offers_only_discovery_keys() {
    let c = LoginConfig::new("iqn.x", None, SessionType::Discovery);
    let (_, p) = Login::start(c).unwrap();
    assert_eq!(val(&p, "SessionType").as_deref(), Some("Discovery"));
    assert_eq!(val(&p, "TargetName"), None);
    assert_eq!(val(&p, "MaxBurstLength"), None);
}

#[test]
fn overrides_are_validated_and_offered() {
    let mut c = cfg();
    c.apply_overrides(&[("MaxRecvDataSegmentLength".into(), "65536".into())])
        .unwrap();
    let (_, p) = Login::start(c.clone()).unwrap();
    assert_eq!(
        val(&p, "MaxRecvDataSegmentLength").as_deref(),
        Some("65536")
    );
    assert!(c
        .apply_overrides(&[("ImmediateData".into(), "maybe".into())])
        .is_err());
}

#[test]
fn portals_and_target_addresses() {
    assert_eq!(
        parse_portal("10.0.0.1", 3260),
        Some(Portal {
            host: "10.0.0.1".into(),
            port: 3260
        })
    );
    assert_eq!(
        parse_portal("[fe80::1]:3261", 3260),
        Some(Portal {
            host: "fe80::1".into(),
            port: 3261
        })
    );
    assert_eq!(parse_portal("[fe80::zz]:3261", 3260), None);
    assert_eq!(parse_portal("host:0", 3260), None);
    assert_eq!(parse_portal(":3260", 3260), None);
    assert_eq!(parse_portal("[::1", 3260), None);
    assert_eq!(
        parse_target_address("192.0.2.1:3262,7", 3260),
        Some((
            Portal {
                host: "192.0.2.1".into(),
                port: 3262
            },
            Some(7)
        ))
    );
    assert_eq!(
        parse_target_address("t.example", 3260).map(|(p, _)| p.port),
        Some(3260)
    );
    assert_eq!(
        Portal {
            host: "::1".into(),
            port: 1
        }
        .to_string(),
        "[::1]:1"
    );
}
