//! The executor: PID 1 walks the plan step by step. Every step is recorded
//! (events on the connector, `/run/netboot/boot.json`) and a failing step
//! ends the boot with one error that names the step and the value; `run`
//! then applies the failure policy — PID 1 never just exits.

pub mod attach;
mod config;
pub mod pid1;

use crate::events::{step, BootOutcome, Emitter, Facts, Recorder};
use crate::iscsi::kernel::IscsiNl;
use crate::plan::{BootPlan, FailurePolicy};
use pid1::RealSys;
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A failed step: its name and the whole error chain as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub step: &'static str,
    pub error: String,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} failed: {}", self.step, self.error)
    }
}

/// Runs one step: emits its start, runs `f`, records the outcome with the
/// facts `f` returned, and turns an error into a [`StepFailed`].
pub struct Exec {
    pub rec: Recorder,
}

impl Exec {
    pub fn step<T, E: fmt::Display>(
        &mut self,
        name: &'static str,
        facts: Facts,
        f: impl FnOnce() -> Result<(T, Facts), E>,
    ) -> Result<T, StepFailed> {
        let h = self.rec.start(name, facts);
        match f() {
            Ok((v, facts)) => {
                self.rec.finish(h, Ok::<_, &str>(facts));
                Ok(v)
            }
            Err(e) => {
                let error = e.to_string();
                self.rec.finish(h, Err(error.as_str()));
                Err(StepFailed { step: name, error })
            }
        }
    }
}

/// Options for a boot run (PID 1 or `netboot boot`).
pub struct BootOptions {
    /// Kernel command line (from /proc/cmdline in PID 1).
    pub cmdline: String,
    /// uptime at agent start, seconds (benchmark mark).
    pub started_uptime: f64,
}

/// Pre-scan for `netboot.on_fail=` when the full command line does not
/// parse: the operator's policy still applies to that failure.
pub fn fallback_policy(cmdline: &str) -> FailurePolicy {
    let mut p = BootPlan::default().on_fail;
    for arg in crate::cmdline::tokenize::tokenize(cmdline).args {
        // Keys come normalised (`-` folded to `_`) from the tokenizer.
        if arg.key == "netboot.on_fail" {
            if let Some(v) = arg.value.as_deref().and_then(FailurePolicy::parse) {
                p = v;
            }
        }
    }
    p
}

/// PID 1 entry: never returns.
pub fn pid1_main() -> ! {
    let started = pid1::uptime();
    // Before anything can log to /dev/kmsg, /dev must exist.
    let pseudo_t0 = Instant::now();
    let pseudo = pid1::mount_pseudofs(&mut RealSys);
    let pseudo_us = pseudo_t0.elapsed().as_micros() as u64;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut plan = match crate::cmdline::parse_plan(cmdline.trim_end()) {
        Ok(p) => p,
        Err(e) => {
            crate::klog::init(
                crate::klog::LogTarget::Kmsg,
                log::LevelFilter::Info,
                Vec::new(),
            );
            log::error!("kernel command line: {e}");
            let policy = fallback_policy(&cmdline);
            log::error!(
                "boot failed: cannot parse the command line; applying netboot.on_fail={}",
                policy.name()
            );
            pid1::fail_policy(policy);
        }
    };
    let secrets = plan.secrets();
    crate::klog::init(
        crate::klog::LogTarget::Kmsg,
        plan.log.into(),
        secrets.clone(),
    );
    log::info!("netboot {} starting as PID 1", env!("CARGO_PKG_VERSION"));
    let plan_json = serde_json::to_value(&plan).unwrap_or(serde_json::Value::Null);
    let mut exec = Exec {
        rec: Recorder::new(Emitter::new(plan.events, secrets), plan_json),
    };
    // The pseudo-fs step happened before the recorder existed; record it.
    let _ = exec.step(step::PSEUDOFS, Facts::new(), || match &pseudo {
        Ok(done) => Ok((
            (),
            Facts::new()
                .str("mounted", done.join(","))
                .u64("took_us", pseudo_us),
        )),
        Err(e) => Err(e.to_string()),
    });
    if let Err(e) = &pseudo {
        fail(
            &mut exec,
            &plan,
            StepFailed {
                step: step::PSEUDOFS,
                error: e.to_string(),
            },
        );
    }
    let opts = BootOptions {
        cmdline,
        started_uptime: started,
    };
    match run(&mut exec, &mut plan, &opts) {
        Ok(root) => {
            // Hand over: the report is final before init starts (it lives
            // in /run, which moves into the new root).
            if let Err(e) = exec.rec.finish_boot(BootOutcome::Ok) {
                log::warn!("boot report: {e}");
            }
            let e = pid1::switch_root(&root, &plan.init);
            // switch_root returns only on failure, and by then the old
            // root may be gone: log, then apply the policy.
            fail(
                &mut exec,
                &plan,
                StepFailed {
                    step: step::SWITCH_ROOT,
                    error: e.to_string(),
                },
            );
        }
        Err(failed) => fail(&mut exec, &plan, failed),
    }
}

/// Log the failure (one line with the whole chain), close the report and
/// apply the policy.
fn fail(exec: &mut Exec, plan: &BootPlan, failed: StepFailed) -> ! {
    log::error!(
        "boot failed at {}: {}; netboot.on_fail={}",
        failed.step,
        failed.error,
        plan.on_fail.name()
    );
    if let Err(e) = exec
        .rec
        .finish_boot(BootOutcome::failed(failed.step, &failed.error))
    {
        log::warn!("boot report: {e}");
    }
    pid1::fail_policy(plan.on_fail)
}

/// Everything between the pseudo file systems and switch_root. Returns the
/// directory where the root is mounted. A fetched config is merged into
/// `plan`, so the caller's failure policy is the merged one.
pub fn run(exec: &mut Exec, plan: &mut BootPlan, opts: &BootOptions) -> Result<String, StepFailed> {
    let started = Instant::now();
    let mut deadline = started + Duration::from_millis(plan.timeout_ms);
    // Without a root path, a config server or DHCP nothing can supply one:
    // fail before touching the network.
    if plan.paths.is_empty() && plan.config.servers.is_empty() && !plan.network.uses_dhcp() {
        return Err(no_root_path());
    }
    if plan.iscsi.firmware || plan.iscsi.ibft {
        return Err(StepFailed {
            step: step::ISCSI_LOGIN,
            error: "rd.iscsi.firmware / rd.iscsi.ibft (iBFT) are not supported yet; give the root path on the command line".into(),
        });
    }
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let moddir = Path::new("/lib/modules").join(&release);
    let index = steps::modules(exec, &moddir, &plan.network)?;
    let links = steps::network(exec, plan, deadline)?;
    write_resolv_conf(plan, &links);
    let mac = links.first().map(|l| l.mac.clone());
    let dhcp_host = links.iter().find_map(|l| l.hostname.clone());
    let id = config::identity(plan, mac.as_deref(), dhcp_host.as_deref());
    if let Some(f) = config::fetch(exec, plan, &index, &id, deadline)? {
        let network = plan.network.clone();
        crate::rxrpc::apply(
            &f.config,
            plan,
            &crate::rxrpc::config::explicit_keys(&opts.cmdline),
        );
        adopt(exec, plan);
        deadline = started + Duration::from_millis(plan.timeout_ms);
        // The config's `ip=` entries come on top of the bootstrap network.
        if plan.network != network {
            steps::network(exec, plan, deadline)?;
        }
    }
    dhcp_root_path(exec, plan, &links)?;
    if plan.paths.is_empty() {
        return Err(no_root_path());
    }
    let plan = &*plan;
    let initiator = attach::initiator_name(plan, mac.as_deref());
    let sys = Path::new("/sys");
    // The kernel sockets: NETLINK_ISCSI for the sessions, and the uevent
    // socket, opened before any SCSI scan so that no disk event is missed.
    let (nl, mut uevents) = exec.step(step::ISCSI_CONNECT, Facts::new(), || {
        let nl = IscsiNl::open(sys).map_err(|e| e.to_string())?;
        let ue = crate::uevent::UeventSocket::open().map_err(|e| e.to_string())?;
        Ok::<_, String>(((Rc::new(nl), ue), Facts::new()))
    })?;
    let mut last = None;
    for (i, path) in plan.paths.iter().enumerate() {
        let chap = attach::chap_for(plan, path);
        let facts = attach::login_facts(path, chap)
            .u64("path", i as u64)
            .str("initiator", initiator.clone());
        let res = exec.step(step::ISCSI_LOGIN, facts, || {
            attach::attach(&nl, plan, &initiator, path, &mut std::thread::sleep).map(|a| {
                let f = attach::attached_facts(&a);
                (a, f)
            })
        });
        match res {
            Ok(a) => {
                log::info!(
                    "logged in to {} at {} (session {}, host {})",
                    path.target,
                    a.portal,
                    a.session.sid,
                    a.session.host_no
                );
                match steps::disk(exec, plan, path, &a, &mut uevents, deadline) {
                    Ok((disk, root)) => {
                        steps::tune(exec, plan, &disk)?;
                        let dir = steps::mount(exec, plan, &index, &root)?;
                        // The benchmark's marks (qemu/bench reads them off
                        // the console): agent start and root mounted.
                        log::info!(
                            "BENCH init={:.3} mounted={:.3}",
                            opts.started_uptime,
                            pid1::uptime()
                        );
                        return Ok(dir);
                    }
                    Err(e) => {
                        log::warn!("{e}; trying the next root path");
                        last = Some(e);
                    }
                }
            }
            Err(e) => {
                if i + 1 < plan.paths.len() {
                    log::warn!("{}; trying the next root path", e.error);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(StepFailed {
        step: step::ISCSI_LOGIN,
        error: "no root path".into(),
    }))
}

/// Name servers from `nameserver=`, `ip=` and DHCP go to /etc/resolv.conf,
/// so host names in `netboot.config=` and root paths resolve (musl reads
/// it; the initramfs has none). Best effort: a failure is logged.
fn write_resolv_conf(plan: &BootPlan, links: &[crate::net::LinkReport]) {
    let mut servers: Vec<std::net::IpAddr> = Vec::new();
    let all = plan
        .network
        .nameservers
        .iter()
        .chain(plan.network.ip.iter().flat_map(|ip| ip.dns.iter()))
        .chain(links.iter().flat_map(|l| l.dns.iter()));
    for a in all {
        if !servers.contains(a) {
            servers.push(*a);
        }
    }
    if servers.is_empty() {
        return;
    }
    let text: String = servers
        .iter()
        .map(|a| format!("nameserver {a}\n"))
        .collect();
    let res =
        std::fs::create_dir_all("/etc").and_then(|()| std::fs::write("/etc/resolv.conf", text));
    if let Err(e) = res {
        log::warn!("/etc/resolv.conf: {e}; host names will not resolve");
    }
}

/// The plan changed after the start (fetched config, DHCP root path): the
/// report shows the new plan, events follow its target, and the logger and
/// events redact its secrets and use its level.
fn adopt(exec: &mut Exec, plan: &BootPlan) {
    let secrets = plan.secrets();
    let plan_json = serde_json::to_value(plan).unwrap_or(serde_json::Value::Null);
    exec.rec.replan(plan_json, plan.events, secrets.clone());
    crate::klog::update(plan.log.into(), secrets);
}

/// `root=dhcp` / `netroot=dhcp`, or no root path from the command line or
/// the config: use the root path of DHCP option 17 (RFC 4173), as dracut
/// does. `root=dhcp` without one is an error naming the links asked.
fn dhcp_root_path(
    exec: &mut Exec,
    plan: &mut BootPlan,
    links: &[crate::net::LinkReport],
) -> Result<(), StepFailed> {
    if !plan.root_path_from_dhcp && !plan.paths.is_empty() {
        return Ok(());
    }
    let fail = |error: String| StepFailed {
        step: step::NET_LINK,
        error,
    };
    let Some((iface, value)) = links
        .iter()
        .find_map(|l| l.root_path.as_ref().map(|r| (l.iface.as_str(), r.as_str())))
    else {
        if plan.root_path_from_dhcp && plan.paths.is_empty() {
            let asked: Vec<&str> = links.iter().map(|l| l.iface.as_str()).collect();
            return Err(fail(format!(
                "root=dhcp: no DHCP server sent a root path (option 17) on {}",
                if asked.is_empty() {
                    "any link".to_string()
                } else {
                    asked.join(", ")
                }
            )));
        }
        return Ok(());
    };
    let path = crate::cmdline::rootpath::parse(value).map_err(|e| {
        fail(format!(
            "root path {} from DHCP on {iface}: {e}",
            crate::cmdline::rootpath::mask(value)
        ))
    })?;
    log::info!(
        "root path from DHCP on {iface}: {}",
        crate::cmdline::rootpath::mask(value)
    );
    if plan.paths.is_empty() {
        plan.paths.push(path);
        adopt(exec, plan);
    }
    Ok(())
}

fn no_root_path() -> StepFailed {
    StepFailed {
        step: step::ISCSI_LOGIN,
        error: "no iSCSI root path: give iscsi=, root=iscsi:… or netroot=iscsi:… on the kernel command line, or paths in the config from netboot.config=".into(),
    }
}

mod steps;
