//! The RFC 7143 login as a state machine with no I/O.
//!
//! [`Login::start`] yields the first Login Request; every Login Response goes
//! to [`Login::receive`], which yields the next request or the outcome. The
//! same machine runs over a userspace TCP stream and over the kernel's
//! SEND_PDU / KEVENT_RECV_PDU channel, so both paths negotiate identically.
//!
//! Stages (RFC 7143 §6.3): the security stage is used only when CHAP is
//! configured; otherwise the first request goes straight to operational
//! negotiation, as open-iscsi does with AuthMethod=None.

use super::chap::{self, ChapError, OurChallenge};
use super::pdu::{LoginRequest, LoginResponse, Message, Pdu, PduError, Reject, Stage, TargetSn};
use super::text::{self, Kind, NegotiationError, TextError};
use crate::hostport::host_port;
use crate::plan::Chap;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// PDUs the target may send in one login before we call it broken: its
/// PDU budget. Every PDU counts, whatever it is: the login phase carries
/// only Login Responses (RFC 7143 §6.3), so a NOP-In, Async Message or
/// anything else ends the login with an error instead of restarting a
/// count. A CHAP login takes 4 exchanges; each continued PDU (C bit) either
/// way adds one. 64 leaves room for a whole [`MAX_LOGIN_TEXT`] from the
/// target in 8192-byte PDUs (8) and our answers to it, split the same way,
/// while bounding a target that continues forever (with the attempt's
/// deadline, which bounds the time: `SessionSetup::until` at boot,
/// `--timeout` in the tools).
pub const MAX_ROUNDS: u32 = 64;
/// Bytes of continued (C bit) login text we buffer (RFC 7143 §6.1 allows
/// keys up to 8 KiB; SendTargets is not in login).
pub const MAX_LOGIN_TEXT: usize = 64 * 1024;
/// Bytes of text the target may send over the whole login, its byte
/// budget: four full [`MAX_LOGIN_TEXT`]s. The captured logins receive at
/// most 2.5 KiB (tests/fixtures: istgt's mutual CHAP, its CHAP_C alone is
/// 2 KiB); without it a target could send large text in every one of its
/// [`MAX_ROUNDS`] PDUs.
pub const MAX_LOGIN_BYTES: usize = 4 * MAX_LOGIN_TEXT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    Normal,
    Discovery,
}

/// What we offer and who we are.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub initiator_name: String,
    /// Required for a normal session, absent for discovery.
    pub target_name: Option<String>,
    pub session_type: SessionType,
    pub isid: [u8; 6],
    /// 0 for a new session.
    pub tsih: u16,
    pub cid: u16,
    /// Task tag of the login; every response must echo it. The kernel's
    /// SEND_PDU rewrites ITT (unless 0xffffffff) and CmdSN (reference §2),
    /// so the kernel channel must map the tag back before `receive`.
    pub itt: u32,
    /// Initial CmdSN (the kernel rewrites it on its channel).
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub chap: Option<Chap>,
    /// Operational keys we offer, in order (defaults merged with overrides).
    pub offers: Vec<(String, String)>,
}

/// Our operational offers: iscsistart's defaults (reference §4.1), which the
/// kernel's iscsi_tcp handles and which give the best sequential throughput.
pub fn default_offers(kind: SessionType) -> Vec<(String, String)> {
    let v: &[(&str, &str)] = match kind {
        SessionType::Normal => &[
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxConnections", "1"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("MaxBurstLength", "16776192"),
            ("FirstBurstLength", "262144"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("MaxOutstandingR2T", "1"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("ErrorRecoveryLevel", "0"),
        ],
        // RFC 7143 §13: session-wide data keys are irrelevant in discovery.
        SessionType::Discovery => &[
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("ErrorRecoveryLevel", "0"),
        ],
    };
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl LoginConfig {
    pub fn new(initiator_name: &str, target_name: Option<&str>, session_type: SessionType) -> Self {
        LoginConfig {
            initiator_name: initiator_name.to_string(),
            target_name: target_name.map(str::to_string),
            session_type,
            isid: [0x80, 0, 0, 0, 0, 0],
            tsih: 0,
            cid: 0,
            itt: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
            chap: None,
            offers: default_offers(session_type),
        }
    }

    /// A random-format ISID (RFC 7143 §11.12.5: T=10b, 24 random bits in B
    /// and C, qualifier D = 1).
    ///
    /// The ISID only has to be unique, not secret: it is drawn without
    /// waiting for the kernel's CRNG (GRND_INSECURE). At boot under a VM
    /// the CRNG can take seconds to initialise, and a blocking getrandom
    /// here held the whole login (measured: 1 s under QEMU TCG).
    pub fn random_isid(&mut self) -> Result<(), ChapError> {
        let mut r = [0u8; 3];
        chap::unique_bytes(&mut r)?;
        self.isid = [0x80, r[0], r[1], r[2], 0, 1];
        Ok(())
    }

    /// Apply `KEY=VALUE` overrides (`netboot.param.*`, `rd.iscsi.param`).
    /// Known keys are type-checked; unknown keys are offered as given.
    pub fn apply_overrides(&mut self, params: &[(String, String)]) -> Result<(), NegotiationError> {
        for (k, v) in params {
            text::validate(k, v)?;
            match self.offers.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.clone(),
                None => self.offers.push((k.clone(), v.clone())),
            }
        }
        Ok(())
    }
}

/// Values in force for the session (RFC 7143 §13), as the kernel needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Negotiated {
    pub header_digest: bool,
    pub data_digest: bool,
    /// What we declared we receive.
    pub max_recv_data_segment_length: u32,
    /// What the target declared it receives (our transmit limit).
    pub max_xmit_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthUsed {
    None,
    Chap,
    MutualChap,
}

/// What a successful login leaves behind.
#[derive(Debug, Clone, Serialize)]
pub struct LoginOutcome {
    pub negotiated: Negotiated,
    pub tsih: u16,
    #[serde(skip)]
    pub isid: [u8; 6],
    /// Sequence numbers from the final response.
    #[serde(skip)]
    pub sn: TargetSn,
    /// Next ExpStatSN (last StatSN + 1) and CmdSN for full-feature phase.
    #[serde(skip)]
    pub exp_stat_sn: u32,
    #[serde(skip)]
    pub cmd_sn: u32,
    pub tpgt: Option<u16>,
    pub target_alias: Option<String>,
    pub auth: AuthUsed,
    /// Every key the target sent, in order, for the report.
    #[serde(skip)]
    pub target_keys: Vec<(String, String)>,
    /// Number of request/response exchanges.
    pub rounds: u32,
}

#[derive(Debug)]
pub enum LoginError {
    Pdu(PduError),
    Text(TextError),
    Negotiation(NegotiationError),
    Chap(ChapError),
    /// A PDU that is not a Login Response during login.
    UnexpectedPdu {
        opcode: u8,
    },
    /// The target rejected our Login Request (RFC 7143 §11.17).
    Rejected {
        reason: u8,
    },
    ItTMismatch {
        sent: u32,
        got: u32,
    },
    Version {
        active: u8,
    },
    StageMismatch {
        expected: Stage,
        got: Stage,
    },
    /// Status 0x0101/0x0102: reconnect to `address` (RFC 7143 §11.13.5).
    Redirect {
        address: String,
        permanent: bool,
    },
    /// Redirect without a usable TargetAddress key.
    BadRedirect {
        value: String,
    },
    /// 0x0201 with credentials configured.
    AuthenticationFailed {
        user: String,
        target: String,
    },
    /// 0x0201/0x0202 without credentials: the target wants CHAP.
    AuthenticationRequired {
        target: String,
        status: u16,
    },
    /// 0x0202 with credentials: the user may not access this target.
    AuthorizationFailed {
        user: String,
        target: String,
    },
    TargetNotFound {
        target: String,
        status: u16,
    },
    /// Any other initiator-class (0x02xx) status.
    InitiatorError {
        status: u16,
        target: String,
    },
    /// Target-class (0x03xx) status: may succeed on retry.
    TargetError {
        status: u16,
        target: String,
    },
    /// Unknown status class.
    Status {
        status: u16,
        target: String,
    },
    /// We required CHAP (mutual) but the target chose another AuthMethod.
    AuthMethod {
        offered: String,
        answered: String,
    },
    /// The target ended the login (T=1 to full feature) with TSIH 0.
    NoTsih,
    /// Over the login's PDU budget ([`MAX_ROUNDS`]).
    TooManyRounds,
    TextTooLong,
    /// Over the login's byte budget ([`MAX_LOGIN_BYTES`]).
    TooManyBytes,
    /// The target answered a continued request of ours (C bit) with text
    /// or a C bit of its own instead of an empty response (RFC 7143 §6.1).
    ContinuationAnswer {
        len: usize,
        cont: bool,
    },
    /// A normal session needs a target name.
    NoTargetName,
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoginError::*;
        match self {
            Pdu(e) => write!(f, "malformed login PDU: {e}"),
            Text(e) => write!(f, "malformed login text: {e}"),
            Negotiation(e) => write!(f, "negotiation failed: {e}"),
            Chap(e) => write!(f, "CHAP failed: {e}"),
            UnexpectedPdu { opcode } => write!(
                f,
                "target sent a {} ({opcode:#04x}) during login",
                super::pdu::opcode_name(*opcode)
            ),
            Rejected { reason } => write!(
                f,
                "target rejected the login request: {} ({reason:#04x})",
                super::pdu::reject_reason(*reason)
            ),
            ItTMismatch { sent, got } => {
                write!(f, "login response for task {got:#x}, expected {sent:#x}")
            }
            Version { active } => write!(f, "target speaks iSCSI version {active}, we speak 0"),
            StageMismatch { expected, got } => {
                write!(f, "target answered in stage {got:?} while we are in {expected:?}")
            }
            Redirect { address, permanent } => write!(
                f,
                "target redirected {} to {address}",
                if *permanent { "permanently" } else { "temporarily" }
            ),
            BadRedirect { value } => write!(f, "target redirected to unusable address {value:?}"),
            AuthenticationFailed { user, target } => write!(
                f,
                "authentication failed for user {user:?} at {target} (status 0x0201); check the CHAP user and secret"
            ),
            AuthenticationRequired { target, status } => write!(
                f,
                "{target} requires authentication (status {status:#06x}) but no CHAP credentials are configured; Hint: give user:secret@ in the root path or rd.iscsi.username/rd.iscsi.password"
            ),
            AuthorizationFailed { user, target } => write!(
                f,
                "authorization failed: user {user:?} may not access {target} (status 0x0202)"
            ),
            TargetNotFound { target, status } => {
                write!(f, "{target} not found on this portal (status {status:#06x})")
            }
            InitiatorError { status, target } => write!(
                f,
                "{target} refused the login: {} (status {status:#06x})",
                status_text(*status)
            ),
            TargetError { status, target } => write!(
                f,
                "{target} failed the login: {} (status {status:#06x})",
                status_text(*status)
            ),
            Status { status, target } => {
                write!(f, "{target} answered unknown login status {status:#06x}")
            }
            AuthMethod { offered, answered } => {
                write!(f, "we offered AuthMethod={offered} but the target answered {answered:?}")?;
                if offered == "CHAP" {
                    // Only mutual CHAP offers CHAP alone (see Login::start).
                    write!(f, "; mutual CHAP authenticates the target and cannot be skipped")?;
                }
                Ok(())
            }
            NoTsih => write!(f, "target completed the login without assigning a TSIH"),
            TooManyRounds => write!(
                f,
                "login did not complete within its budget of {MAX_ROUNDS} PDUs from the target"
            ),
            TextTooLong => write!(f, "login text continued beyond {MAX_LOGIN_TEXT} bytes"),
            TooManyBytes => write!(
                f,
                "target sent more than the login's budget of {MAX_LOGIN_BYTES} bytes of text"
            ),
            ContinuationAnswer { len, cont } => write!(
                f,
                "target answered our continued login request with {len} bytes of text{}, not the empty response RFC 7143 §6.1 asks for",
                if *cont { " and the C bit" } else { "" }
            ),
            NoTargetName => write!(f, "a normal session needs a target name"),
        }
    }
}

impl std::error::Error for LoginError {}

impl LoginError {
    /// Target-side transient failures worth retrying (status class 3).
    pub fn is_transient(&self) -> bool {
        matches!(self, LoginError::TargetError { .. })
    }
}

/// RFC 7143 §11.13.5 status texts.
pub fn status_text(status: u16) -> &'static str {
    match status {
        0x0000 => "success",
        0x0101 => "target moved temporarily",
        0x0102 => "target moved permanently",
        0x0200 => "initiator error",
        0x0201 => "authentication failure",
        0x0202 => "authorization failure",
        0x0203 => "target not found",
        0x0204 => "target removed",
        0x0205 => "unsupported version",
        0x0206 => "too many connections",
        0x0207 => "missing parameter",
        0x0208 => "can't include in session",
        0x0209 => "session type not supported",
        0x020a => "session does not exist",
        0x020b => "invalid request during login",
        0x0300 => "target error",
        0x0301 => "service unavailable",
        0x0302 => "out of resources",
        _ => "unknown status",
    }
}

impl From<PduError> for LoginError {
    fn from(e: PduError) -> Self {
        LoginError::Pdu(e)
    }
}
impl From<TextError> for LoginError {
    fn from(e: TextError) -> Self {
        LoginError::Text(e)
    }
}
impl From<NegotiationError> for LoginError {
    fn from(e: NegotiationError) -> Self {
        LoginError::Negotiation(e)
    }
}
impl From<ChapError> for LoginError {
    fn from(e: ChapError) -> Self {
        LoginError::Chap(e)
    }
}

#[derive(Debug)]
enum Auth {
    /// No CHAP configured, or CHAP done.
    Idle,
    /// Sent AuthMethod, waiting for the target's choice.
    MethodOffered,
    /// Sent CHAP_A, waiting for CHAP_I/CHAP_C.
    AlgorithmSent,
    /// Sent CHAP_N/CHAP_R (and our challenge if mutual).
    ResponseSent(Option<OurChallenge>),
}

/// Next thing to do after a response.
#[derive(Debug)]
pub enum Step {
    Send(Pdu),
    Done(LoginOutcome),
}

pub struct Login {
    cfg: LoginConfig,
    stage: Stage,
    auth: Auth,
    auth_used: AuthUsed,
    /// Keys we offered that await an answer (negotiated kinds only).
    pending: Vec<(String, String)>,
    /// Values in force, by key.
    settled: BTreeMap<String, String>,
    target_keys: Vec<(String, String)>,
    /// Text of responses with the C bit, awaiting the rest.
    partial: Vec<u8>,
    /// Pieces of our current request text still to send, each after the
    /// target's empty answer to the previous one (RFC 7143 §6.1).
    outgoing: VecDeque<Vec<u8>>,
    /// T, CSG and NSG of the current request: its last piece carries them.
    flags: (bool, Stage, Stage),
    exp_stat_sn: u32,
    rounds: u32,
    /// Data bytes received over the whole login.
    received: usize,
}

fn is_declarative(key: &str) -> bool {
    matches!(
        text::kind_of(key),
        Some(Kind::Declarative | Kind::DeclarativeNumber { .. })
    )
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Login {
    /// Begin: the machine and the first Login Request.
    pub fn start(cfg: LoginConfig) -> Result<(Login, Pdu), LoginError> {
        if cfg.session_type == SessionType::Normal && cfg.target_name.is_none() {
            return Err(LoginError::NoTargetName);
        }
        let mut keys: Vec<(String, String)> =
            vec![("InitiatorName".into(), cfg.initiator_name.clone())];
        if let Some(t) = &cfg.target_name {
            if cfg.session_type == SessionType::Normal {
                keys.push(("TargetName".into(), t.clone()));
            }
        }
        let st = match cfg.session_type {
            SessionType::Normal => "Normal",
            SessionType::Discovery => "Discovery",
        };
        keys.push(("SessionType".into(), st.into()));
        let exp_stat_sn = cfg.exp_stat_sn;
        let mut login = Login {
            stage: Stage::Security,
            auth: Auth::Idle,
            auth_used: AuthUsed::None,
            pending: Vec::new(),
            settled: BTreeMap::new(),
            target_keys: Vec::new(),
            partial: Vec::new(),
            outgoing: VecDeque::new(),
            flags: (false, Stage::Security, Stage::Security),
            exp_stat_sn,
            rounds: 0,
            received: 0,
            cfg,
        };
        let pdu = match &login.cfg.chap {
            Some(chap) => {
                // One-way CHAP may fall back to None if the target does not
                // want authentication; mutual CHAP exists to authenticate the
                // target, so it must not be skipped.
                let method = if chap.mutual.is_some() {
                    "CHAP"
                } else {
                    "CHAP,None"
                };
                keys.push(("AuthMethod".into(), method.into()));
                login.auth = Auth::MethodOffered;
                login.request(true, Stage::Security, Stage::Operational, &keys)
            }
            None => {
                login.stage = Stage::Operational;
                keys.extend(login.offers());
                login.request(true, Stage::Operational, Stage::FullFeature, &keys)
            }
        };
        Ok((login, pdu))
    }

    /// Operational offers; remembers which await an answer.
    fn offers(&mut self) -> Vec<(String, String)> {
        self.pending = self
            .cfg
            .offers
            .iter()
            .filter(|(k, _)| !is_declarative(k))
            .cloned()
            .collect();
        self.cfg.offers.clone()
    }

    /// The target's last declared MaxRecvDataSegmentLength, settled.
    fn declared_mrdsl(&self) -> Option<String> {
        self.target_keys
            .iter()
            .rev()
            .find(|(k, _)| k == "MaxRecvDataSegmentLength")
            .and_then(|(_, v)| {
                text::settle("MaxRecvDataSegmentLength", "", v)
                    .ok()
                    .flatten()
            })
    }

    /// The largest data segment we may send now: the target's declared
    /// MaxRecvDataSegmentLength once its text had one, else 8192 (RFC 7143
    /// §13.12 default). Never above 8192 during login: the kernel channel
    /// cannot send more in one login PDU (reference §2), and the declared
    /// value is meant for full feature phase.
    fn xmit_limit(&self) -> usize {
        self.declared_mrdsl()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(text::LOGIN_DATA_SEGMENT, |n| {
                n.min(text::LOGIN_DATA_SEGMENT)
            })
    }

    /// The request carrying `keys`: their text is cut at [`Self::xmit_limit`]
    /// (RFC 7143 §6.1, §11.12.2); this is its first PDU, the rest go out
    /// one by one as the target acknowledges each (see [`Login::receive`]).
    fn request(&mut self, transit: bool, csg: Stage, nsg: Stage, keys: &[(String, String)]) -> Pdu {
        let data = text::encode(keys);
        let mut pieces: VecDeque<Vec<u8>> = text::split_segments(&data, self.xmit_limit())
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let first = pieces.pop_front().unwrap_or_default();
        self.outgoing = pieces;
        self.flags = (transit, csg, nsg);
        self.piece(first)
    }

    /// One PDU of the current request: while more pieces follow it has the
    /// C bit and not the T bit (RFC 7143 §11.12.2: a continued Login
    /// Request must not transit); the last carries the request's T and NSG.
    fn piece(&self, data: Vec<u8>) -> Pdu {
        let (transit, csg, nsg) = self.flags;
        let more = !self.outgoing.is_empty();
        LoginRequest {
            transit: transit && !more,
            cont: more,
            csg,
            nsg: if more { csg } else { nsg },
            version_max: 0,
            version_min: 0,
            isid: self.cfg.isid,
            tsih: self.cfg.tsih,
            itt: self.cfg.itt,
            cid: self.cfg.cid,
            cmd_sn: self.cfg.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            data,
        }
        .to_pdu()
    }

    /// What errors call the peer: `target IQN`, or the discovery session.
    fn target(&self) -> String {
        match &self.cfg.target_name {
            Some(t) if self.cfg.session_type == SessionType::Normal => format!("target {t}"),
            _ => "the discovery session".into(),
        }
    }

    fn status_error(&self, rsp: &LoginResponse, keys: &[(String, String)]) -> LoginError {
        let status = rsp.status();
        let target = self.target();
        let user = self.cfg.chap.as_ref().map(|c| c.username.clone());
        match (rsp.status_class, status) {
            (1, _) => match get(keys, "TargetAddress") {
                Some(a) => LoginError::Redirect {
                    address: a.to_string(),
                    permanent: status == 0x0102,
                },
                None => LoginError::BadRedirect {
                    value: String::new(),
                },
            },
            (2, 0x0201) => match user {
                Some(user) => LoginError::AuthenticationFailed { user, target },
                None => LoginError::AuthenticationRequired { target, status },
            },
            (2, 0x0202) => match user {
                Some(user) => LoginError::AuthorizationFailed { user, target },
                None => LoginError::AuthenticationRequired { target, status },
            },
            (2, 0x0203 | 0x0204) => LoginError::TargetNotFound { target, status },
            (2, _) => LoginError::InitiatorError { status, target },
            (3, _) => LoginError::TargetError { status, target },
            _ => LoginError::Status { status, target },
        }
    }

    /// Feed one PDU from the target.
    pub fn receive(&mut self, pdu: &Pdu) -> Result<Step, LoginError> {
        // The budgets come first: no PDU, of any kind, escapes them.
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(LoginError::TooManyRounds);
        }
        self.received = self.received.saturating_add(pdu.data.len());
        if self.received > MAX_LOGIN_BYTES {
            return Err(LoginError::TooManyBytes);
        }
        let rsp = match Message::from_pdu(pdu)? {
            Message::LoginResponse(r) => r,
            Message::Reject(Reject { reason, .. }) => return Err(LoginError::Rejected { reason }),
            other => {
                return Err(LoginError::UnexpectedPdu {
                    opcode: other.to_pdu().opcode(),
                })
            }
        };
        if rsp.itt != self.cfg.itt {
            return Err(LoginError::ItTMismatch {
                sent: self.cfg.itt,
                got: rsp.itt,
            });
        }
        // StatSN is valid only in responses with status 0 or in the final
        // one; tracking it always is harmless (RFC 7143 §11.13.4).
        self.exp_stat_sn = rsp.sn.stat_sn.wrapping_add(1);
        if rsp.status() != 0 {
            let keys = text::parse(&rsp.data).unwrap_or_default();
            return Err(self.status_error(&rsp, &keys));
        }
        if rsp.version_active != 0 {
            return Err(LoginError::Version {
                active: rsp.version_active,
            });
        }
        if rsp.csg != self.stage {
            return Err(LoginError::StageMismatch {
                expected: self.stage,
                got: rsp.csg,
            });
        }
        if let Some(next) = self.outgoing.pop_front() {
            // The target's answer to a continued request of ours: empty, so
            // that we send the next piece (RFC 7143 §6.1). Text here would
            // be lost, and a C bit means both sides are continuing.
            if !rsp.data.is_empty() || rsp.cont {
                return Err(LoginError::ContinuationAnswer {
                    len: rsp.data.len(),
                    cont: rsp.cont,
                });
            }
            return Ok(Step::Send(self.piece(next)));
        }
        self.partial.extend_from_slice(&rsp.data);
        if self.partial.len() > MAX_LOGIN_TEXT {
            return Err(LoginError::TextTooLong);
        }
        if rsp.cont {
            // RFC 7143 §11.13.2: answer a continued response with an empty
            // request in the same stage to get the rest of the text.
            return Ok(Step::Send(self.request(false, self.stage, self.stage, &[])));
        }
        let keys = text::parse(&std::mem::take(&mut self.partial))?;
        self.target_keys.extend(keys.iter().cloned());
        // The target's declaratives (TargetPortalGroupTag, TargetAlias…) may
        // come in any stage; record them, they need no answer. Its
        // MaxRecvDataSegmentLength is read from target_keys at the end.
        for (k, v) in &keys {
            if is_declarative(k) && k != "MaxRecvDataSegmentLength" {
                if let Some(val) = text::settle(k, "", v)? {
                    self.settled.insert(k.clone(), val);
                }
            }
        }
        match self.stage {
            Stage::Security => self.security(&rsp, &keys),
            Stage::Operational => self.operational(&rsp, &keys),
            Stage::FullFeature => Err(LoginError::StageMismatch {
                expected: Stage::Operational,
                got: rsp.csg,
            }),
        }
    }

    fn security(
        &mut self,
        rsp: &LoginResponse,
        keys: &[(String, String)],
    ) -> Result<Step, LoginError> {
        let chap = self.cfg.chap.clone().ok_or(LoginError::StageMismatch {
            expected: Stage::Operational,
            got: Stage::Security,
        })?;
        let lookup = |k: &str| get(keys, k).map(str::to_string);
        match std::mem::replace(&mut self.auth, Auth::Idle) {
            Auth::MethodOffered => {
                let answered = get(keys, "AuthMethod").unwrap_or("").to_string();
                match answered.as_str() {
                    "CHAP" => {
                        self.auth = Auth::AlgorithmSent;
                        let k = vec![("CHAP_A".to_string(), chap::ALGORITHM_MD5.to_string())];
                        Ok(Step::Send(self.request(
                            false,
                            Stage::Security,
                            Stage::Security,
                            &k,
                        )))
                    }
                    "None" if chap.mutual.is_none() => {
                        log::warn!(
                            "{} chose AuthMethod=None; continuing without CHAP",
                            self.target()
                        );
                        self.after_security(rsp)
                    }
                    _ => Err(LoginError::AuthMethod {
                        offered: if chap.mutual.is_some() {
                            "CHAP"
                        } else {
                            "CHAP,None"
                        }
                        .into(),
                        answered,
                    }),
                }
            }
            Auth::AlgorithmSent => {
                let tc = chap::read_challenge(lookup)?;
                let resp = chap::response(tc.id, chap.secret.expose().as_bytes(), &tc.challenge);
                let mut k = vec![
                    ("CHAP_N".to_string(), chap.username.clone()),
                    ("CHAP_R".to_string(), chap::encode_hex(&resp)),
                ];
                let ours = match &chap.mutual {
                    Some(_) => {
                        let ours = OurChallenge::random()?;
                        if ours.challenge[..] == tc.challenge[..] {
                            return Err(ChapError::Reflected.into());
                        }
                        k.push(("CHAP_I".into(), ours.id.to_string()));
                        k.push(("CHAP_C".into(), chap::encode_hex(&ours.challenge)));
                        Some(ours)
                    }
                    None => None,
                };
                self.auth = Auth::ResponseSent(ours);
                self.auth_used = if chap.mutual.is_some() {
                    AuthUsed::MutualChap
                } else {
                    AuthUsed::Chap
                };
                Ok(Step::Send(self.request(
                    true,
                    Stage::Security,
                    Stage::Operational,
                    &k,
                )))
            }
            Auth::ResponseSent(ours) => {
                if let (Some(ours), Some(m)) = (&ours, &chap.mutual) {
                    chap::verify_target(
                        ours.id,
                        &ours.challenge,
                        &m.username,
                        m.secret.expose().as_bytes(),
                        lookup,
                    )?;
                }
                self.after_security(rsp)
            }
            Auth::Idle => self.after_security(rsp),
        }
    }

    /// Security is settled: move to operational once the target transits.
    fn after_security(&mut self, rsp: &LoginResponse) -> Result<Step, LoginError> {
        if rsp.transit && rsp.nsg == Stage::Operational {
            self.stage = Stage::Operational;
            let offers = self.offers();
            Ok(Step::Send(self.request(
                true,
                Stage::Operational,
                Stage::FullFeature,
                &offers,
            )))
        } else if rsp.transit && rsp.nsg == Stage::FullFeature {
            // A target may skip operational negotiation (RFC 7143 §6.3):
            // every key keeps its default.
            self.finish(rsp)
        } else {
            // Not transiting yet: ask again.
            Ok(Step::Send(self.request(
                true,
                Stage::Security,
                Stage::Operational,
                &[],
            )))
        }
    }

    fn operational(
        &mut self,
        rsp: &LoginResponse,
        keys: &[(String, String)],
    ) -> Result<Step, LoginError> {
        let mut answers = Vec::new();
        for (k, v) in keys {
            if let Some(pos) = self.pending.iter().position(|(pk, _)| pk == k) {
                let (_, offered) = self.pending.remove(pos);
                if let Some(val) = text::settle(k, &offered, v)? {
                    self.settled.insert(k.clone(), val);
                }
            } else if is_declarative(k) {
                // Recorded in receive().
            } else if self.cfg.offers.iter().any(|(ok, _)| ok == k) {
                // A second answer to a key already settled: RFC 7143 §6.2
                // forbids renegotiation; keep the first value.
                log::debug!("target repeated {k}={v}; keeping {:?}", self.settled.get(k));
            } else {
                // The target's own offer: answer it (NotUnderstood if unknown).
                let ours = self
                    .cfg
                    .offers
                    .iter()
                    .find(|(ok, _)| ok == k)
                    .map(|(_, v)| v.as_str());
                let a = text::answer(k, v, ours);
                if a != text::NOT_UNDERSTOOD && a != text::REJECT {
                    self.settled.insert(k.clone(), a.clone());
                }
                answers.push((k.clone(), a));
            }
        }
        if rsp.transit && rsp.nsg == Stage::FullFeature {
            return self.finish(rsp);
        }
        Ok(Step::Send(self.request(
            true,
            Stage::Operational,
            Stage::FullFeature,
            &answers,
        )))
    }

    fn finish(&mut self, rsp: &LoginResponse) -> Result<Step, LoginError> {
        if rsp.tsih == 0 && self.cfg.tsih == 0 {
            return Err(LoginError::NoTsih);
        }
        let target_mrdsl = self.declared_mrdsl();
        let num = |key: &str| -> u32 {
            self.settled
                .get(key)
                .map(String::as_str)
                .or_else(|| text::default_of(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let yes = |key: &str| -> bool {
            self.settled
                .get(key)
                .map(String::as_str)
                .or_else(|| text::default_of(key))
                == Some("Yes")
        };
        let digest = |key: &str| self.settled.get(key).map(String::as_str) == Some("CRC32C");
        let ours_mrdsl = self
            .cfg
            .offers
            .iter()
            .find(|(k, _)| k == "MaxRecvDataSegmentLength")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(8192);
        let negotiated = Negotiated {
            header_digest: digest("HeaderDigest"),
            data_digest: digest("DataDigest"),
            max_recv_data_segment_length: ours_mrdsl,
            max_xmit_data_segment_length: target_mrdsl.and_then(|v| v.parse().ok()).unwrap_or(8192),
            max_burst_length: num("MaxBurstLength"),
            first_burst_length: num("FirstBurstLength"),
            initial_r2t: yes("InitialR2T"),
            immediate_data: yes("ImmediateData"),
            max_outstanding_r2t: num("MaxOutstandingR2T"),
            data_pdu_in_order: yes("DataPDUInOrder"),
            data_sequence_in_order: yes("DataSequenceInOrder"),
            error_recovery_level: num("ErrorRecoveryLevel"),
            default_time2wait: num("DefaultTime2Wait"),
            default_time2retain: num("DefaultTime2Retain"),
            max_connections: num("MaxConnections"),
        };
        Ok(Step::Done(LoginOutcome {
            negotiated,
            tsih: rsp.tsih,
            isid: self.cfg.isid,
            sn: rsp.sn,
            exp_stat_sn: self.exp_stat_sn,
            cmd_sn: rsp.sn.exp_cmd_sn,
            tpgt: self
                .settled
                .get("TargetPortalGroupTag")
                .and_then(|v| v.parse().ok()),
            target_alias: self.settled.get("TargetAlias").cloned(),
            auth: self.auth_used,
            target_keys: std::mem::take(&mut self.target_keys),
            rounds: self.rounds,
        }))
    }
}

/// A portal to connect to: host (IPv6 without brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Portal {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&host_port(&self.host, self.port))
    }
}

/// Parse `host[:port]` / `[v6][:port]` (port defaults to `default_port`).
pub fn parse_portal(s: &str, default_port: u16) -> Option<Portal> {
    let (host, rest) = if let Some(r) = s.strip_prefix('[') {
        let end = r.find(']')?;
        let host = &r[..end];
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, &r[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match rest {
        "" => default_port,
        r => {
            let p: u16 = r.strip_prefix(':')?.parse().ok()?;
            if p == 0 {
                return None;
            }
            p
        }
    };
    Some(Portal {
        host: host.to_string(),
        port,
    })
}

/// `TargetAddress=domainname[:port][,portal-group-tag]` (RFC 7143 §13.9).
pub fn parse_target_address(v: &str, default_port: u16) -> Option<(Portal, Option<u16>)> {
    let (addr, tag) = match v.rsplit_once(',') {
        Some((a, t)) => (a, Some(t.parse().ok()?)),
        None => (v, None),
    };
    Some((parse_portal(addr, default_port)?, tag))
}

#[cfg(test)]
mod tests;
