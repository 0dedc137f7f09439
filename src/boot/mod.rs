//! The executor: PID 1 walks the plan step by step under one deadline.
//! Every step is recorded (events on the connector, `/run/netboot/boot.json`)
//! and a failing step returns a typed [`StepError`] (transient or fatal);
//! `run` retries transient login failures over every root path until the
//! deadline ([`failover`]) and hands the rest to the failure policy — PID 1
//! never just exits.

pub mod attach;
mod config;
pub mod error;
pub mod failover;
mod firmware;
pub mod pid1;
mod preload;

pub use error::{BootError, Classify, ErrorKind, StepError};

use crate::cmdline::supported::Executable;
use crate::events::{step, BootOutcome, Emitter, Facts, Recorder};
use crate::iscsi::kernel::IscsiNl;
use crate::plan::{BootPlan, FailurePolicy};
use failover::{Secs, SystemClock};
use pid1::RealSys;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Runs one step: emits its start, runs `f`, records the outcome with the
/// facts `f` returned, and turns an error into a [`StepError`].
pub struct Exec {
    pub rec: Recorder,
}

impl Exec {
    pub fn step<T, E: std::error::Error + Classify + 'static>(
        &mut self,
        name: &'static str,
        facts: Facts,
        f: impl FnOnce() -> Result<(T, Facts), E>,
    ) -> Result<T, StepError> {
        let h = self.rec.start(name, facts);
        match f() {
            Ok((v, facts)) => {
                self.rec.finish(h, Ok::<_, &str>(facts));
                Ok(v)
            }
            Err(e) => {
                let e = StepError::new(name, e);
                let text = e.chain();
                self.rec.finish(h, Err(text.as_str()));
                Err(e)
            }
        }
    }
}

/// Options for a boot run (PID 1 or `netboot boot`).
pub struct BootOptions {
    /// Kernel command line (from /proc/cmdline in PID 1).
    pub cmdline: String,
    /// The `netboot.secrets=` file's arguments: explicit like the command
    /// line's own, so a fetched config does not override them.
    pub secrets_args: Vec<crate::cmdline::tokenize::Arg>,
    /// uptime at agent start, seconds (benchmark mark).
    pub started_uptime: f64,
    /// PID 1 of our own initramfs, or `netboot attach` inside another init.
    pub mode: Mode,
}

/// Who runs the boot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/init` of netboot's own initramfs: everything is ours to set up.
    Pid1,
    /// `netboot attach` inside dracut, initramfs-tools or mkinitcpio: udev
    /// may be running (and may have renamed the NIC), modules may be
    /// loaded, links may be configured already. Stops when the root device
    /// is present; the caller mounts it.
    Attach,
}

/// The root device is present (and its queue tuned): what [`run`] mounts
/// and `netboot attach` hands to the caller.
pub struct RootReady {
    pub root: crate::disk::resolve::Root,
    /// The LUN's disk (`sda`).
    pub disk: String,
    pub sid: u32,
    pub host_no: u32,
    pub target: String,
    /// The boot NIC, when the network step configured or found one.
    pub iface: Option<String>,
    /// What the resident recovery process needs (secrets included: it
    /// only ever travels on a pipe).
    pub handoff: crate::recovery::Handoff,
    index: crate::kmod::ModuleIndex,
}

#[cfg(test)]
impl RootReady {
    pub fn for_tests(root: crate::disk::resolve::Root, disk: &str, sid: u32, target: &str) -> Self {
        RootReady {
            root,
            disk: disk.into(),
            sid,
            host_no: sid,
            target: target.into(),
            iface: Some("eth0".into()),
            handoff: crate::recovery::Handoff {
                sid,
                cid: 0,
                host_no: sid,
                target: target.into(),
                initiator: String::new(),
                isid: [0; 6],
                tsih: 0,
                portals: Vec::new(),
                chap: None,
                offers: Vec::new(),
                login_timeout_ms: 15_000,
                replacement_timeout_s: 120,
                events: None,
                log: "info".into(),
            },
            index: crate::kmod::ModuleIndex::default(),
        }
    }
}

/// Pre-scan for `netboot.on_fail=` and `netboot.reboot_delay=` before the full command line is parsed: the operator's
/// policy applies even when the line does not parse, and to a crash.
pub fn fallback_policy(cmdline: &str) -> (FailurePolicy, u64) {
    let d = BootPlan::default();
    let (mut p, mut delay) = (d.on_fail, d.reboot_delay_ms);
    for arg in crate::cmdline::tokenize::tokenize(cmdline).args {
        // Keys come normalised (`-` folded to `_`) from the tokenizer.
        let v = arg.value.as_deref();
        match arg.key.as_str() {
            "netboot.on_fail" => {
                if let Some(v) = v.and_then(FailurePolicy::parse) {
                    p = v;
                }
            }
            "netboot.reboot_delay" => {
                if let Some(ms) = v.and_then(|v| {
                    crate::cmdline::keys::reboot_delay_ms(crate::cmdline::keys::Dur::Seconds(v))
                        .ok()
                }) {
                    delay = ms;
                }
            }
            _ => {}
        }
    }
    (p, delay)
}

/// PID 1 entry: never returns.
pub fn pid1_main() -> ! {
    let started = pid1::uptime();
    // Before anything can log to /dev/kmsg, /dev must exist.
    let pseudo_t0 = Instant::now();
    let pseudo = pid1::mount_pseudofs(&mut RealSys);
    let pseudo_us = pseudo_t0.elapsed().as_micros() as u64;
    let early_log = || {
        crate::klog::init(
            crate::klog::LogTarget::Kmsg,
            log::LevelFilter::Info,
            Vec::new(),
        )
    };
    let cmdline = match crate::cmdline::read_cmdline(Path::new("/proc/cmdline")) {
        Ok(c) => c,
        Err(e) => {
            // Booting an empty line would silently drop the operator's
            // root path and policy: say so and apply the default policy.
            early_log();
            pid1::crash_guard(
                BootPlan::default().on_fail,
                BootPlan::default().reboot_delay_ms,
            );
            log::error!("boot failed: cannot read /proc/cmdline: {e}");
            let d = BootPlan::default();
            pid1::fail_policy(d.on_fail, d.reboot_delay_ms);
        }
    };
    let cmdline = cmdline.trim_end().to_string();
    // The policy holds from here on, even for a crash of this process
    // (a dead PID 1 is a kernel panic, which with panic=0 hangs forever).
    let pre = fallback_policy(&cmdline);
    pid1::crash_guard(pre.0, pre.1);
    pid1::kernel_panic_policy(&cmdline, pre.0, pre.1);
    let (mut plan, secrets_args) = match plan_from(&cmdline) {
        Ok(p) => p,
        Err(e) => {
            early_log();
            log::error!("kernel command line: {e}");
            log::error!(
                "boot failed: cannot use the command line; applying netboot.on_fail={}",
                pre.0.name()
            );
            pid1::fail_policy(pre.0, pre.1);
        }
    };
    pid1::crash_guard(plan.on_fail, plan.reboot_delay_ms);
    let secrets = plan.secrets();
    crate::klog::init(
        crate::klog::LogTarget::Kmsg,
        plan.log.into(),
        secrets.clone(),
    );
    log::info!("netboot {} starting as PID 1", env!("CARGO_PKG_VERSION"));
    pid1::test_crash_route();
    let plan_json = serde_json::to_value(&plan).unwrap_or(serde_json::Value::Null);
    let mut exec = Exec {
        rec: Recorder::new(Emitter::new(plan.events, secrets), plan_json),
    };
    // The pseudo-fs step happened before the recorder existed; record it.
    let recorded = exec.step(step::PSEUDOFS, Facts::new(), || match &pseudo {
        Ok(done) => Ok((
            (),
            Facts::new()
                .str("mounted", done.join(","))
                .u64("took_us", pseudo_us),
        )),
        Err(e) => Err(e.clone()),
    });
    if let Err(e) = recorded {
        fail(&mut exec, &plan, e);
    }
    let opts = BootOptions {
        cmdline,
        secrets_args,
        started_uptime: started,
        mode: Mode::Pid1,
    };
    match run(&mut exec, &mut plan, &opts) {
        Ok((root, handoff)) => {
            // Life after switch_root: the resident answers the session's
            // connection errors until iscsid starts (netboot.recovery=).
            if plan.recovery == crate::plan::Recovery::Resident {
                match crate::recovery::resident::spawn(&handoff, &root) {
                    Ok(pid) => log::info!(
                        "recovery: resident pid {pid} watches session {}",
                        handoff.sid
                    ),
                    Err(e) => log::warn!(
                        "recovery: cannot start the resident: {e}; nothing recovers session {} after switch_root",
                        handoff.sid
                    ),
                }
            }
            // Hand over: the report is final before init starts (it lives
            // in /run, which moves into the new root).
            if let Err(e) = exec.rec.finish_boot(BootOutcome::Ok) {
                log::warn!("boot report: {e}");
            }
            let e = pid1::switch_root(&root, &plan.init);
            // switch_root returns only on failure, and by then the old
            // root may be gone: log, then apply the policy.
            fail(&mut exec, &plan, StepError::new(step::SWITCH_ROOT, e));
        }
        Err(failed) => fail(&mut exec, &plan, failed),
    }
}

/// The plan from the command line and, with `netboot.secrets=FILE`, the
/// credentials in that file (the command line's own keys win).
pub fn plan_from(cmdline: &str) -> Result<(BootPlan, Vec<crate::cmdline::tokenize::Arg>), String> {
    let plan = crate::cmdline::parse_plan(cmdline).map_err(|e| e.to_string())?;
    let Some(file) = plan.config.credentials_file.clone() else {
        return Ok((plan, Vec::new()));
    };
    let text = read_secrets(&file)?;
    let extra = crate::cmdline::secrets::file_args(&text, &file).map_err(|e| e.to_string())?;
    let plan = crate::cmdline::parse_plan_with(cmdline, &extra).map_err(|e| e.to_string())?;
    Ok((plan, extra))
}

/// The secrets file, read with a cap (a huge file must not exhaust PID 1).
fn read_secrets(file: &str) -> Result<String, String> {
    let name = crate::cmdline::quote(file);
    let cap = crate::cmdline::secrets::MAX_LEN as u64;
    let bytes = crate::bounded::read_file(Path::new(file), cap)
        .map_err(|e| format!("netboot.secrets={name}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("netboot.secrets={name}: not UTF-8 text"))
}

/// Log the failure (one line with the whole chain and its kind), close the
/// report and apply the policy.
fn fail(exec: &mut Exec, plan: &BootPlan, failed: StepError) -> ! {
    // The failure line is written whatever `netboot.log` says (even `off`):
    // an operator must see why the machine stops.
    let level: log::LevelFilter = plan.log.into();
    crate::klog::update(level.max(log::LevelFilter::Error), plan.secrets());
    let chain = failed.chain();
    log::error!(
        "boot failed at {}: {chain} [{}]; netboot.on_fail={}",
        failed.step,
        failed.kind.name(),
        plan.on_fail.name()
    );
    if let Err(e) = exec
        .rec
        .finish_boot(BootOutcome::failed(failed.step, &chain))
    {
        log::warn!("boot report: {e}");
    }
    pid1::fail_policy(plan.on_fail, plan.reboot_delay_ms)
}

/// Everything between the pseudo file systems and switch_root. Returns the
/// directory where the root is mounted. A fetched config is merged into
/// `plan`, so the caller's failure policy is the merged one.
///
/// One deadline, `netboot.timeout` from here, bounds the network, the
/// config fetch, every login attempt on every path and the disk wait.
pub fn run(
    exec: &mut Exec,
    plan: &mut BootPlan,
    opts: &BootOptions,
) -> Result<(String, crate::recovery::Handoff), StepError> {
    let ready = run_to_device(exec, plan, opts)?;
    let dir = steps::mount(exec, plan, &ready.index, &ready.root)?;
    // The benchmark's marks (qemu/bench reads them off the console): agent
    // start and root mounted.
    log::info!(
        "BENCH init={:.3} mounted={:.3}",
        opts.started_uptime,
        pid1::uptime()
    );
    // …and each step's span (ms since the agent started: start+duration).
    log::info!(
        "BENCH steps {}",
        bench_steps(&exec.rec.report(&BootOutcome::Ok).steps)
    );
    Ok((dir, ready.handoff))
}

/// `name=START+DURATION …` in ms, in start order (qemu/bench's per-step
/// figures).
fn bench_steps(steps: &[crate::events::StepReport]) -> String {
    let mut v: Vec<&crate::events::StepReport> = steps.iter().collect();
    v.sort_by_key(|s| s.start_us);
    v.iter()
        .map(|s| format!("{}={}+{}", s.step, s.start_us / 1000, s.duration_us / 1000))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The boot path up to "root device present": modules, network, config,
/// login with failover, scan, disk wait, `root=` resolution, queue tuning.
/// PID 1 goes on to mount ([`run`]); `netboot attach` stops here.
pub fn run_to_device(
    exec: &mut Exec,
    plan: &mut BootPlan,
    opts: &BootOptions,
) -> Result<RootReady, StepError> {
    let started = Instant::now();
    // Without a root path, a config server, DHCP or the iBFT nothing can
    // supply one: fail before touching the network.
    let firmware = plan.iscsi.firmware || plan.iscsi.ibft;
    if plan.paths.is_empty()
        && plan.config.servers.is_empty()
        && !plan.network.uses_dhcp()
        && !firmware
    {
        return Err(no_root_path());
    }
    let executable = check_supported(plan)?;
    let moddir = crate::kmod::running_kernel_dir();
    let (index, lists) = steps::modules(exec, &moddir, plan, opts.mode)?;
    let mut preload = preload::Preload::spawn(exec, lists);
    let res = to_device(exec, plan, opts, index, &mut preload, started, executable);
    // On every path: no loader thread outlives the boot path (bounded by
    // the deadline, which a fetched config may have moved).
    let deadline = started + Duration::from_millis(plan.timeout_ms);
    let joined = preload.finish(exec, deadline);
    let ready = res?;
    joined?;
    Ok(ready)
}

/// [`run_to_device`] after the `modules` step, with the helper thread's
/// modules loading meanwhile.
fn to_device(
    exec: &mut Exec,
    plan: &mut BootPlan,
    opts: &BootOptions,
    index: crate::kmod::ModuleIndex,
    preload: &mut preload::Preload,
    started: Instant,
    mut executable: Executable,
) -> Result<RootReady, StepError> {
    let mut deadline = started + Duration::from_millis(plan.timeout_ms);
    let firmware = plan.iscsi.firmware || plan.iscsi.ibft;
    // The command line's own keys (and the secrets file's) win over the
    // iBFT; both win over a fetched config.
    let mut explicit = crate::config::explicit_keys(&opts.cmdline);
    explicit.extend(crate::cmdline::keys::fields_of(&opts.secrets_args));
    if firmware {
        let from_table = firmware::ibft_step(exec, plan, &index, &explicit)?;
        explicit.extend(from_table);
        executable = check_supported(plan)?;
        adopt(exec, plan);
    }
    let existing = match opts.mode {
        Mode::Pid1 => crate::net::Existing::Configure,
        Mode::Attach => crate::net::Existing::Respect,
    };
    let mut links = steps::network(exec, plan, deadline, existing)?;
    let mac = links.first().map(|l| l.mac.clone());
    let dhcp_host = links.iter().find_map(|l| l.hostname.clone());
    let id = config::identity(plan, mac.as_deref(), dhcp_host.as_deref());
    // Name servers known before the fetch, so a config server given by
    // host name resolves; rewritten below once the config is merged.
    write_resolv_conf(plan, &links);
    if let Some(f) = config::fetch(exec, plan, &index, &id, deadline)? {
        let network = plan.network.clone();
        crate::config::apply(&f.config, plan, &explicit);
        executable = check_supported(plan)?;
        adopt(exec, plan);
        deadline = started + Duration::from_millis(plan.timeout_ms);
        // The config's `ip=` entries come on top of the bootstrap network;
        // what the second pass reports replaces the first pass's links.
        if plan.network != network {
            let again = steps::network(exec, plan, deadline, existing)?;
            merge_links(&mut links, again);
        }
        write_resolv_conf(plan, &links);
    }
    dhcp_root_path(exec, plan, &links)?;
    if plan.paths.is_empty() {
        return Err(no_root_path());
    }
    let plan = &*plan;
    let initiator = attach::initiator_name(plan, mac.as_deref());
    // Every rd.iscsi.param= applied, as check_supported verified.
    let node = executable.node;
    let sys = Path::new("/sys");
    // NETLINK_ISCSI needs scsi_transport_iscsi, the login iscsi_tcp.
    preload.storage(exec, deadline)?;
    // The kernel sockets: NETLINK_ISCSI for the sessions, and the uevent
    // socket, opened before any SCSI scan so that no disk event is missed.
    let (nl, mut uevents) = exec.step(step::ISCSI_CONNECT, Facts::new(), || {
        let nl = IscsiNl::open(sys).map_err(OpenError::Iscsi)?;
        let ue = crate::netlink::uevent::UeventSocket::open().map_err(OpenError::Uevent)?;
        Ok::<_, OpenError>(((Rc::new(nl), ue), Facts::new()))
    })?;
    let policy = failover::Policy {
        initial_backoff: failover::INITIAL_BACKOFF,
        max_backoff: failover::MAX_BACKOFF,
        // One attempt: connect (≤ CONNECT_TIMEOUT) plus the login PDUs.
        attempt_timeout: attach::CONNECT_TIMEOUT + node.login_timeout,
        max_attempts: (plan.iscsi.login_retry_max > 0).then_some(plan.iscsi.login_retry_max),
    };
    let mut clock = SystemClock;
    let res = failover::run(plan.paths.len(), &policy, deadline, &mut clock, |a| {
        let Some(path) = plan.paths.get(a.path) else {
            return Err((
                ErrorKind::Fatal,
                StepError::new(step::ISCSI_LOGIN, BootError::fatal("no such path")),
            ));
        };
        let chap = attach::chap_for(plan, path);
        let facts = attach::login_facts(path, chap)
            .u64("path", a.path as u64)
            .u64("attempt", a.number.into())
            .str("initiator", initiator.clone());
        let attached = exec
            .step(step::ISCSI_LOGIN, facts, || {
                attach::attach(&nl, plan, &node, &initiator, path, a.timeout).map(|at| {
                    let f = attach::attached_facts(&at);
                    (at, f)
                })
            })
            .map_err(|e| {
                // A transient failure is retried: say so. A fatal one ends
                // this path; with a single path the final line says it all.
                match e.kind {
                    ErrorKind::Transient => log::warn!(
                        "path {} attempt {}: {}; retrying within netboot.timeout",
                        a.path,
                        a.number,
                        e.chain()
                    ),
                    ErrorKind::Fatal if plan.paths.len() > 1 => log::warn!(
                        "path {}: {} [fatal]; this path is not tried again",
                        a.path,
                        e.chain()
                    ),
                    ErrorKind::Fatal => {}
                }
                (e.kind, e)
            })?;
        log::info!(
            "logged in to {} at {} (session {}, host {})",
            path.target,
            attached.portal,
            attached.session.sid,
            attached.session.host_no
        );
        let (disk, root) = steps::disk(exec, plan, path, &attached, &mut uevents, deadline)
            .map_err(|e| {
                log::warn!("{}; trying the next root path", e.chain());
                (ErrorKind::Fatal, e)
            })?;
        let handoff = handoff_for(plan, path, &attached, &initiator, &node);
        Ok((path, attached.session, disk, root, handoff))
    });
    let (_, (path, session, disk, root, handoff)) = res.map_err(|e| login_exhausted(plan, e))?;
    steps::tune(exec, plan, &disk)?;
    if opts.mode == Mode::Attach {
        steps::attach_fs_modules(plan, &index, &root);
    }
    Ok(RootReady {
        root,
        disk,
        sid: session.sid,
        host_no: session.host_no,
        target: path.target.clone(),
        iface: links.first().map(|l| l.iface.clone()),
        handoff,
        index,
    })
}

/// The resident's handoff: the session as logged in, the portal it is on
/// first, then the plan's other portals of the same target (failover).
fn handoff_for(
    plan: &BootPlan,
    path: &crate::plan::RootPath,
    a: &attach::Attached,
    initiator: &str,
    node: &crate::iscsi::node::NodeSettings,
) -> crate::recovery::Handoff {
    use crate::recovery::handoff::{ChapSpec, EventsSpec, PortalSpec};
    let tpgt = a.outcome.tpgt.unwrap_or(path.tpgt);
    let mut portals = vec![PortalSpec {
        host: a.portal.host.clone(),
        port: a.portal.port,
        tpgt,
    }];
    for p in plan.paths.iter().filter(|p| p.target == path.target) {
        if !portals
            .iter()
            .any(|q| q.host == p.server && q.port == p.port)
        {
            portals.push(PortalSpec {
                host: p.server.clone(),
                port: p.port,
                tpgt: p.tpgt,
            });
        }
    }
    crate::recovery::Handoff {
        sid: a.session.sid,
        cid: a.session.cid,
        host_no: a.session.host_no,
        target: path.target.clone(),
        initiator: initiator.to_string(),
        isid: a.outcome.isid,
        tsih: a.outcome.tsih,
        portals,
        chap: attach::chap_for(plan, path).map(ChapSpec::from_chap),
        offers: crate::cmdline::supported::login_overrides(node, plan),
        login_timeout_ms: node.login_timeout.as_millis() as u64,
        replacement_timeout_s: node.replacement_timeout,
        events: plan.events.as_ref().map(EventsSpec::from_target),
        log: log::LevelFilter::from(plan.log)
            .as_str()
            .to_ascii_lowercase(),
    }
}

/// The kernel sockets of the `iscsi.connect` step.
#[derive(Debug)]
enum OpenError {
    Iscsi(crate::iscsi::kernel::KernelError),
    Uevent(crate::netlink::uevent::UeventError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Iscsi(e) => write!(f, "{e}"),
            OpenError::Uevent(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OpenError {}
impl Classify for OpenError {}

/// Settings the plan may hold that this build cannot honour: refused, not
/// ignored.
/// The plan's one gate ([`crate::cmdline::supported::check`], which
/// `netboot plan` runs too): before the network, and again once a fetched
/// config is merged. A refusal is fatal; it is charged to the step that
/// would have failed.
fn check_supported(plan: &BootPlan) -> Result<Executable, StepError> {
    use crate::cmdline::supported::Unsupported;
    crate::cmdline::supported::check(plan).map_err(|e| {
        let at = match e {
            Unsupported::Network(_) => step::NET_LINK,
            _ => step::ISCSI_LOGIN,
        };
        StepError::new(at, BootError::fatal(e.to_string()))
    })
}

/// The one line when no path logged in: every path, its attempts and its
/// last error, and why the loop stopped.
fn login_exhausted(plan: &BootPlan, e: failover::Exhausted<StepError>) -> StepError {
    let per_path: Vec<String> = e
        .paths
        .iter()
        .zip(&plan.paths)
        .enumerate()
        .map(|(i, (rec, path))| {
            let last = rec
                .last
                .as_ref()
                .map_or("not tried".to_string(), |(k, err)| {
                    // With one path the line's own kind says it.
                    if plan.paths.len() == 1 {
                        err.chain()
                    } else {
                        format!("{} [{}]", err.chain(), k.name())
                    }
                });
            format!(
                "path {i} {} {}: {last} ({} attempt{})",
                path.portal(),
                path.target,
                rec.attempts,
                if rec.attempts == 1 { "" } else { "s" }
            )
        })
        .collect();
    let why = match e.why {
        failover::GaveUp::Deadline => format!(
            "no root path logged in within netboot.timeout={} (login ran {})",
            Secs(Duration::from_millis(plan.timeout_ms)),
            Secs(e.after)
        ),
        failover::GaveUp::NoPathLeft => "no root path can log in".to_string(),
    };
    StepError::new(
        step::ISCSI_LOGIN,
        BootError {
            text: format!("{why}: {}", per_path.join("; ")),
            kind: e.kind(),
        },
    )
}

/// Links from a second network pass replace the ones of the same name.
fn merge_links(links: &mut Vec<crate::net::LinkReport>, again: Vec<crate::net::LinkReport>) {
    for l in again {
        match links.iter_mut().find(|o| o.iface == l.iface) {
            Some(slot) => *slot = l,
            None => links.push(l),
        }
    }
}

/// Name servers from `nameserver=`, `ip=` and DHCP go to /etc/resolv.conf,
/// so host names in `netboot.config=` and root paths resolve (musl reads
/// it; the initramfs has none). Best effort: a failure is logged.
fn write_resolv_conf(plan: &BootPlan, links: &[crate::net::LinkReport]) {
    let servers = resolv_servers(plan, links);
    if servers.is_empty() {
        return;
    }
    let text = resolv_conf_text(&servers);
    let res =
        std::fs::create_dir_all("/etc").and_then(|()| std::fs::write("/etc/resolv.conf", text));
    if let Err(e) = res {
        log::warn!("/etc/resolv.conf: {e}; host names will not resolve");
    }
}

/// resolv.conf for musl's resolver. `options timeout:2 attempts:2` bounds
/// one lookup to about 4 s per server (musl's default is 5 s × 2): name
/// resolution in `connect` and the config fetch cannot take the boot's
/// deadline with it on a dead name server.
fn resolv_conf_text(servers: &[std::net::IpAddr]) -> String {
    let mut text: String = servers
        .iter()
        .map(|a| format!("nameserver {a}\n"))
        .collect();
    text.push_str("options timeout:2 attempts:2\n");
    text
}

/// The resolver list: the plan's `nameserver=` (command line and config),
/// then `ip=` DNS, then what DHCP sent; each once, in that order.
fn resolv_servers(plan: &BootPlan, links: &[crate::net::LinkReport]) -> Vec<std::net::IpAddr> {
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
    servers
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
) -> Result<(), StepError> {
    if !plan.root_path_from_dhcp && !plan.paths.is_empty() {
        return Ok(());
    }
    let fail = |text: String| StepError::new(step::NET_LINK, BootError::fatal(text));
    let Some((iface, value)) = links
        .iter()
        .find_map(|l| l.root_path.as_ref().map(|r| (l.iface.as_str(), r.as_str())))
    else {
        if plan.root_path_from_dhcp && plan.paths.is_empty() {
            let asked: Vec<&str> = links.iter().map(|l| l.iface.as_str()).collect();
            return Err(fail(format!(
                "root=dhcp: no DHCP server sent a root path (DHCPv4 option 17, DHCPv6 option 59 as iscsi:…) on {}",
                if asked.is_empty() {
                    "any link".to_string()
                } else {
                    asked.join(", ")
                }
            )));
        }
        return Ok(());
    };
    let path = dhcp_root_path_parse(iface, value).map_err(fail)?;
    log::info!(
        "root path from DHCP on {iface}: {}",
        crate::cmdline::rootpath::mask(value)
    );
    if plan.paths.is_empty() {
        plan.paths.push(path);
        // rd.iscsi.target.group= / the config's iscsi.tpgt apply to it too.
        plan.apply_tpgt();
        adopt(exec, plan);
    }
    Ok(())
}

/// DHCP option 17 (RFC 4173) as a root path. The error quotes the value
/// masked by the value's own [`Masker`](crate::cmdline::mask::Masker)
/// (credentials under every reading), escaped: the value comes from the
/// network.
pub fn dhcp_root_path_parse(iface: &str, value: &str) -> Result<crate::plan::RootPath, String> {
    use crate::cmdline::{mask::Masker, quote, rootpath};
    rootpath::parse(value).map_err(|e| {
        let text = format!(
            "root path {} from DHCP on {}: {e}",
            quote(&rootpath::mask(value)),
            crate::escape::escape_controls(iface)
        );
        Masker::for_root_path(value).mask(&text)
    })
}

fn no_root_path() -> StepError {
    StepError::new(
        step::ISCSI_LOGIN,
        BootError::fatal("no iSCSI root path: give iscsi=, root=iscsi:… or netroot=iscsi:… on the kernel command line, or paths in the config from netboot.config="),
    )
}

mod steps;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn link(iface: &str, dns: &[&str]) -> crate::net::LinkReport {
        crate::net::LinkReport {
            iface: iface.into(),
            mac: "52:54:00:12:34:56".into(),
            address: "198.18.0.2".parse().unwrap(),
            prefix_len: 24,
            gateway: None,
            mtu: None,
            carrier_ms: 0,
            dhcp_server: None,
            lease_s: None,
            root_path: None,
            hostname: None,
            dns: dns.iter().map(|d| d.parse().unwrap()).collect(),
            dhcp_ms: None,
        }
    }

    #[test]
    fn fallback_policy_reads_on_fail_and_whole_second_delays() {
        assert_eq!(
            fallback_policy("netboot.on-fail=halt netboot.reboot_delay=3 iscsi=\"x"),
            (FailurePolicy::Halt, 3000)
        );
        assert_eq!(fallback_policy("netboot.reboot_delay=0.5").1, 500);
        let d = BootPlan::default();
        assert_eq!(
            fallback_policy("netboot.on_fail=nonsense netboot.reboot_delay=99999"),
            (d.on_fail, d.reboot_delay_ms)
        );
    }

    #[test]
    fn exhausted_login_names_every_path_with_its_last_error() {
        let plan = crate::cmdline::parse_plan(
            "iscsi=198.18.0.9::3260:1:iqn.2026-11.test:root iscsi=198.18.0.1::3999:1:iqn.2026-11.test:root netboot.timeout=20",
        )
        .unwrap();
        let err = |t: &str, k| {
            Some((
                k,
                StepError::new(
                    step::ISCSI_LOGIN,
                    BootError {
                        text: t.into(),
                        kind: k,
                    },
                ),
            ))
        };
        let e = failover::Exhausted {
            why: failover::GaveUp::Deadline,
            paths: vec![
                failover::PathRecord {
                    attempts: 4,
                    last: err(
                        "connect to 198.18.0.9:3260 timed out after 5 s",
                        ErrorKind::Transient,
                    ),
                },
                failover::PathRecord {
                    attempts: 1,
                    last: err("refused", ErrorKind::Transient),
                },
            ],
            after: Duration::from_secs(20),
        };
        let got = login_exhausted(&plan, e).chain();
        assert_eq!(
            got,
            "no root path logged in within netboot.timeout=20 s (login ran 20 s): \
             path 0 198.18.0.9:3260 iqn.2026-11.test:root: connect to 198.18.0.9:3260 timed out after 5 s [transient] (4 attempts); \
             path 1 198.18.0.1:3999 iqn.2026-11.test:root: refused [transient] (1 attempt)"
        );
    }

    #[test]
    fn second_network_pass_replaces_links_and_config_nameservers_come_first() {
        let mut links = vec![link("eth0", &["198.18.0.1"])];
        merge_links(
            &mut links,
            vec![link("eth0", &["198.18.0.53"]), link("eth1", &[])],
        );
        assert_eq!(links.len(), 2);
        let mut plan = BootPlan::default();
        plan.network.nameservers.push("192.0.2.53".parse().unwrap());
        let got: Vec<String> = resolv_servers(&plan, &links)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.53", "198.18.0.53"]);
        assert_eq!(
            resolv_conf_text(&resolv_servers(&plan, &links)),
            "nameserver 192.0.2.53\nnameserver 198.18.0.53\noptions timeout:2 attempts:2\n"
        );
    }
}
