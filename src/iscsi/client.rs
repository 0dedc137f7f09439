//! A userspace full-feature session: enough of RFC 7143 to run read-type
//! SCSI commands, SendTargets discovery and logout over a logged-in channel.
//! Used by `netboot discover` / `netboot probe` and the host tests; the boot
//! path hands the connection to the kernel instead.

use super::channel::{ChannelError, PduChannel};
use super::login::{parse_target_address, LoginOutcome};
use super::pdu::{self, Message, Pdu, RESERVED_TAG};
use super::scsi;
use super::text::{self, TextError};
use serde::Serialize;
use std::fmt;

/// Unit-attention retries for one command (the first command after login
/// commonly reports "power on or reset occurred").
const UNIT_ATTENTION_RETRIES: u32 = 3;
/// PDUs we tolerate while waiting for one answer (NOP-Ins, async events…).
const MAX_PDUS_PER_TASK: u32 = 100_000;

#[derive(Debug)]
pub enum SessionError {
    Channel {
        step: &'static str,
        error: ChannelError,
    },
    /// The target rejected a PDU of ours.
    Rejected {
        step: &'static str,
        reason: u8,
    },
    /// SCSI status other than GOOD.
    ScsiStatus {
        step: &'static str,
        lun: u64,
        status: u8,
        sense: Option<(u8, u8, u8)>,
    },
    /// iSCSI service response ≠ 0 ("target failure").
    ServiceResponse {
        step: &'static str,
        response: u8,
    },
    /// Data-In outside the buffer we asked for.
    DataOverrun {
        step: &'static str,
        offset: u32,
        len: usize,
        alloc: u32,
    },
    /// The target asked to drop the connection or session (Async event).
    Dropped {
        step: &'static str,
        event: u8,
    },
    Unexpected {
        step: &'static str,
        opcode: u8,
    },
    Logout {
        response: u8,
    },
    Text {
        step: &'static str,
        error: TextError,
    },
    Pdu {
        step: &'static str,
        error: pdu::PduError,
    },
    TooManyPdus {
        step: &'static str,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SessionError::*;
        match self {
            Channel { step, error } => write!(f, "{step}: {error}"),
            Rejected { step, reason } => {
                write!(f, "{step}: target rejected the request: {} ({reason:#04x})", pdu::reject_reason(*reason))
            }
            ScsiStatus { step, lun, status, sense } => {
                write!(f, "{step} on LUN {lun}: SCSI status {status:#04x}")?;
                if let Some((k, asc, ascq)) = sense {
                    write!(f, ", sense key {k:#x} ASC/ASCQ {asc:#04x}/{ascq:#04x}")?;
                }
                Ok(())
            }
            ServiceResponse { step, response } => {
                write!(f, "{step}: target failure (iSCSI response {response:#04x})")
            }
            DataOverrun { step, offset, len, alloc } => write!(
                f,
                "{step}: target sent {len} bytes at offset {offset}, beyond the {alloc} bytes asked for"
            ),
            Dropped { step, event } => write!(f, "{step}: target dropped the connection (async event {event})"),
            Unexpected { step, opcode } => {
                write!(f, "{step}: unexpected {} ({opcode:#04x})", pdu::opcode_name(*opcode))
            }
            Logout { response } => write!(f, "logout refused by target (response {response})"),
            Text { step, error } => write!(f, "{step}: {error}"),
            Pdu { step, error } => write!(f, "{step}: {error}"),
            TooManyPdus { step } => write!(f, "{step}: no answer among {MAX_PDUS_PER_TASK} PDUs"),
        }
    }
}

impl std::error::Error for SessionError {}

/// One target from SendTargets with the portals it listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredTarget {
    pub target: String,
    pub portals: Vec<DiscoveredPortal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredPortal {
    pub address: String,
    pub port: u16,
    pub tpgt: Option<u16>,
}

/// Parse a SendTargets response (RFC 7143 Appendix C): each `TargetName=`
/// starts a record, the `TargetAddress=` keys after it are its portals. A
/// target listed without an address is reachable on the portal we asked.
pub fn parse_send_targets(pairs: &[(String, String)], default_port: u16) -> Vec<DiscoveredTarget> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "TargetName" => out.push(DiscoveredTarget {
                target: v.clone(),
                portals: Vec::new(),
            }),
            "TargetAddress" => {
                if let (Some(t), Some((p, tpgt))) =
                    (out.last_mut(), parse_target_address(v, default_port))
                {
                    t.portals.push(DiscoveredPortal {
                        address: p.host,
                        port: p.port,
                        tpgt,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

pub struct Session<C: PduChannel> {
    ch: C,
    cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
    pub outcome: LoginOutcome,
}

impl<C: PduChannel> Session<C> {
    pub fn new(ch: C, outcome: LoginOutcome) -> Self {
        Session {
            cmd_sn: outcome.cmd_sn,
            exp_stat_sn: outcome.exp_stat_sn,
            next_itt: 1,
            ch,
            outcome,
        }
    }

    fn itt(&mut self) -> u32 {
        let i = self.next_itt;
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == RESERVED_TAG {
            self.next_itt = 1;
        }
        i
    }

    fn send(&mut self, step: &'static str, p: &Pdu) -> Result<(), SessionError> {
        self.ch
            .send(p)
            .map_err(|error| SessionError::Channel { step, error })
    }

    /// Next PDU addressed to us, after serving NOP-In pings and async events.
    fn recv(&mut self, step: &'static str) -> Result<Message, SessionError> {
        for _ in 0..MAX_PDUS_PER_TASK {
            let p = self
                .ch
                .recv()
                .map_err(|error| SessionError::Channel { step, error })?;
            let m = Message::from_pdu(&p).map_err(|error| SessionError::Pdu { step, error })?;
            match m {
                Message::NopIn(n) if n.ttt != RESERVED_TAG => {
                    // A target ping (RFC 7143 §11.19.1): echo the TTT back.
                    let out = pdu::NopOut {
                        immediate: true,
                        lun: n.lun,
                        itt: RESERVED_TAG,
                        ttt: n.ttt,
                        cmd_sn: self.cmd_sn,
                        exp_stat_sn: self.exp_stat_sn,
                        data: n.data,
                    };
                    self.send(step, &out.to_pdu())?;
                }
                Message::AsyncMessage(a) => match a.event {
                    2 | 3 => {
                        return Err(SessionError::Dropped {
                            step,
                            event: a.event,
                        })
                    }
                    e => log::info!("{step}: target async event {e} (ignored)"),
                },
                Message::Reject(r) => {
                    return Err(SessionError::Rejected {
                        step,
                        reason: r.reason,
                    })
                }
                other => return Ok(other),
            }
        }
        Err(SessionError::TooManyPdus { step })
    }

    /// Run a read-type command (no data out), returning the data read.
    pub fn scsi_in(
        &mut self,
        step: &'static str,
        lun: u64,
        cdb: [u8; 16],
        alloc: u32,
    ) -> Result<Vec<u8>, SessionError> {
        let mut attempt = 0;
        loop {
            match self.scsi_in_once(step, lun, cdb, alloc) {
                // Sense key 6 = UNIT ATTENTION: report once, then retry.
                Err(SessionError::ScsiStatus {
                    sense: Some((6, _, _)),
                    ..
                }) if attempt < UNIT_ATTENTION_RETRIES => {
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn scsi_in_once(
        &mut self,
        step: &'static str,
        lun: u64,
        cdb: [u8; 16],
        alloc: u32,
    ) -> Result<Vec<u8>, SessionError> {
        let itt = self.itt();
        let cmd = pdu::ScsiCommand {
            immediate: false,
            flags: pdu::FINAL | pdu::CMD_READ | pdu::ATTR_SIMPLE,
            lun: scsi::encode_lun(lun),
            itt,
            expected_len: alloc,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb,
            data: Vec::new(),
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.send(step, &cmd.to_pdu())?;
        let mut buf = Vec::new();
        loop {
            match self.recv(step)? {
                Message::DataIn(d) if d.itt == itt => {
                    let end = d.offset as usize + d.data.len();
                    if end > alloc as usize {
                        return Err(SessionError::DataOverrun {
                            step,
                            offset: d.offset,
                            len: d.data.len(),
                            alloc,
                        });
                    }
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[d.offset as usize..end].copy_from_slice(&d.data);
                    if d.has_status() {
                        self.exp_stat_sn = d.sn.stat_sn.wrapping_add(1);
                        if d.status != 0 {
                            return Err(SessionError::ScsiStatus {
                                step,
                                lun,
                                status: d.status,
                                sense: None,
                            });
                        }
                        return Ok(buf);
                    }
                }
                Message::ScsiResponse(r) if r.itt == itt => {
                    self.exp_stat_sn = r.sn.stat_sn.wrapping_add(1);
                    if r.response != 0 {
                        return Err(SessionError::ServiceResponse {
                            step,
                            response: r.response,
                        });
                    }
                    if r.status != 0 {
                        return Err(SessionError::ScsiStatus {
                            step,
                            lun,
                            status: r.status,
                            sense: scsi::parse_sense(r.sense()),
                        });
                    }
                    return Ok(buf);
                }
                Message::NopIn(_) => {}
                other => {
                    return Err(SessionError::Unexpected {
                        step,
                        opcode: other.to_pdu().opcode(),
                    })
                }
            }
        }
    }

    /// `SendTargets=All` over this (discovery) session, following C-bit
    /// continuations (RFC 7143 §11.10.2).
    pub fn send_targets(
        &mut self,
        default_port: u16,
    ) -> Result<Vec<DiscoveredTarget>, SessionError> {
        const STEP: &str = "SendTargets";
        let itt = self.itt();
        let mut ttt = RESERVED_TAG;
        let mut body = b"SendTargets=All\0".to_vec();
        let mut text = Vec::new();
        loop {
            let req = pdu::TextRequest {
                immediate: false,
                final_: true,
                cont: false,
                lun: 0,
                itt,
                ttt,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
                data: std::mem::take(&mut body),
            };
            self.cmd_sn = self.cmd_sn.wrapping_add(1);
            self.send(STEP, &req.to_pdu())?;
            match self.recv(STEP)? {
                Message::TextResponse(r) if r.itt == itt => {
                    self.exp_stat_sn = r.sn.stat_sn.wrapping_add(1);
                    text.extend_from_slice(&r.data);
                    if text.len() > 16 << 20 {
                        return Err(SessionError::TooManyPdus { step: STEP });
                    }
                    if r.final_ && !r.cont {
                        break;
                    }
                    ttt = r.ttt;
                }
                other => {
                    return Err(SessionError::Unexpected {
                        step: STEP,
                        opcode: other.to_pdu().opcode(),
                    })
                }
            }
        }
        let pairs = text::parse(&text).map_err(|error| SessionError::Text { step: STEP, error })?;
        Ok(parse_send_targets(&pairs, default_port))
    }

    /// Close the session (RFC 7143 §11.14, reason 0).
    pub fn logout(&mut self) -> Result<(), SessionError> {
        const STEP: &str = "logout";
        let itt = self.itt();
        let req = pdu::LogoutRequest {
            immediate: true,
            reason: pdu::LOGOUT_CLOSE_SESSION,
            itt,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send(STEP, &req.to_pdu())?;
        loop {
            match self.recv(STEP)? {
                Message::LogoutResponse(r) if r.itt == itt => {
                    return if r.response == 0 {
                        Ok(())
                    } else {
                        Err(SessionError::Logout {
                            response: r.response,
                        })
                    };
                }
                Message::NopIn(_) => {}
                other => {
                    return Err(SessionError::Unexpected {
                        step: STEP,
                        opcode: other.to_pdu().opcode(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_targets_records() {
        let pairs = text::parse(
            b"TargetName=iqn.a\0TargetAddress=127.0.0.1:3260,1\0TargetAddress=[::1]:3261,2\0TargetName=iqn.b\0",
        )
        .unwrap();
        let t = parse_send_targets(&pairs, 3260);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].portals[1],
            DiscoveredPortal {
                address: "::1".into(),
                port: 3261,
                tpgt: Some(2)
            }
        );
        assert!(t[1].portals.is_empty());
    }
}
