//! `netboot attach`: the boot path up to "root device present", run inside
//! another init (dracut, initramfs-tools, mkinitcpio). The caller mounts
//! the root; this command tells it where the root is (shell assignments on
//! stdout, `/run/netboot/root.env`, the `/run/netboot/root` link, and for
//! initramfs-tools `ROOT=` in `/conf/param.conf`).

use super::common::{print_stdout, unexpected, Arg, ArgError, Opt, Spec};
use super::Exit;
use crate::boot::{self, BootOptions, Exec, Mode, RootReady, StepError};
use crate::events::{BootOutcome, Emitter, Recorder};
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub static SPEC: Spec = Spec {
    prog: "netboot attach",
    synopsis: "[--cmdline STRING | --cmdline-file FILE] [--for shell|initramfs-tools]\n\
               [--param-conf FILE]",
    summary: "log in to the iSCSI root inside another init and print the root device",
    about: "\
Runs the boot path of netboot's own /init up to \"root device present\":
the kernel command line (the same keys; `netboot plan` shows the plan),
the modules still missing, the network (a link that already has an IPv4
address and carrier is used as it is: no second DHCP), the config fetch,
the login with failover under netboot.timeout, the SCSI scan, the disk
wait, `root=` resolution and queue tuning. It does not mount the root.

On success it prints shell assignments, one per line, single-quoted:
  NETBOOT_ROOT NETBOOT_FSTYPE NETBOOT_ROOTFLAGS NETBOOT_RO NETBOOT_DISK
  NETBOOT_SID NETBOOT_TARGET NETBOOT_IFACE
(`eval \"$(netboot attach)\"`), writes the same lines to
/run/netboot/root.env, points the symlink /run/netboot/root at the root
device and writes the boot report /run/netboot/boot.json. Events go to
the connector as in a PID-1 boot. The session stays in the kernel, ready
for iscsid to adopt.

--for initramfs-tools also appends ROOT= (and ROOTFSTYPE= when the type is
known) to /conf/param.conf, which initramfs-tools sources after each boot
script; --param-conf FILE names another file.

Progress is logged to /dev/kmsg (netboot.log= sets the level). A failure
prints one line, \"netboot attach: boot failed at STEP: ... [transient|fatal]\",
on stderr and in /dev/kmsg; netboot.on_fail= does not apply: the caller's
init decides (emergency shell, panic).

exit codes: 0 the root device is present, 1 the boot path failed (or the
command line is invalid), 2 bad usage.
",
    opts: &[
        Opt {
            name: "--cmdline",
            value: Some("STRING"),
            help: "use this command line instead of /proc/cmdline",
        },
        Opt {
            name: "--cmdline-file",
            value: Some("FILE"),
            help: "read the command line from FILE (at most 1048576 bytes)",
        },
        Opt {
            name: "--for",
            value: Some("FRAMEWORK"),
            help: "shell (default): assignments on stdout; initramfs-tools:\n\
                   also ROOT=/ROOTFSTYPE= appended to /conf/param.conf",
        },
        Opt {
            name: "--param-conf",
            value: Some("FILE"),
            help: "with --for initramfs-tools: the file to append to\n\
                   (default /conf/param.conf)",
        },
    ],
};

const CMD: &str = "attach";
const PARAM_CONF: &str = "/conf/param.conf";
const RUN_DIR: &str = "/run/netboot";

/// How the caller learns the root device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    Shell,
    InitramfsTools,
}

#[derive(Debug)]
pub(super) struct Args<'a> {
    pub source: Option<super::plan::Source<'a>>,
    pub framework: Framework,
    pub param_conf: Option<&'a OsStr>,
}

pub(super) fn parse(args: &[OsString]) -> Result<Args<'_>, ArgError> {
    let mut a = Args {
        source: None,
        framework: Framework::Shell,
        param_conf: None,
    };
    for arg in SPEC.parse(args) {
        match arg? {
            Arg::Value("--cmdline", v) => set_source(&mut a, super::plan::Source::Line(v))?,
            Arg::Value("--cmdline-file", v) => set_source(&mut a, super::plan::Source::File(v))?,
            Arg::Value("--for", v) => {
                a.framework = match v.as_bytes() {
                    b"shell" => Framework::Shell,
                    b"initramfs-tools" => Framework::InitramfsTools,
                    _ => {
                        return Err(format!(
                            "--for {}: want shell or initramfs-tools",
                            super::common::quote_os(v)
                        )
                        .into())
                    }
                }
            }
            Arg::Value("--param-conf", v) => a.param_conf = Some(v),
            // Never echo a positional: it may be a command line with a
            // CHAP secret given without --cmdline.
            Arg::Pos(_) => {
                return Err("unexpected argument (not shown: it may hold a secret; \
                            give a command line with --cmdline)"
                    .into())
            }
            other => return Err(unexpected(other)),
        }
    }
    if a.param_conf.is_some() && a.framework != Framework::InitramfsTools {
        return Err("--param-conf needs --for initramfs-tools".into());
    }
    Ok(a)
}

fn set_source<'a>(a: &mut Args<'a>, s: super::plan::Source<'a>) -> Result<(), ArgError> {
    if a.source.replace(s).is_some() {
        return Err("give one of --cmdline, --cmdline-file".into());
    }
    Ok(())
}

pub fn run(args: &[OsString]) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => return SPEC.exit(e),
    };
    let started = boot::pid1::uptime();
    let cmdline = match super::plan::read_source(a.source.as_ref()) {
        Ok(c) => c,
        Err(msg) => return failed_line(&msg, &[]),
    };
    let cmdline = cmdline.trim_end().to_string();
    let (mut plan, secrets_args) = match boot::plan_from(&cmdline) {
        Ok(p) => p,
        Err(e) => return failed_line(&format!("kernel command line: {e}"), &[]),
    };
    let secrets = plan.secrets();
    crate::klog::init(
        crate::klog::LogTarget::Kmsg,
        plan.log.into(),
        secrets.clone(),
    );
    log::info!("netboot {} attach starting", env!("CARGO_PKG_VERSION"));
    let plan_json = serde_json::to_value(&plan).unwrap_or(serde_json::Value::Null);
    let mut exec = Exec {
        rec: Recorder::new(Emitter::new(plan.events, secrets), plan_json),
    };
    let opts = BootOptions {
        cmdline,
        secrets_args,
        started_uptime: started,
        mode: Mode::Attach,
    };
    match boot::run_to_device(&mut exec, &mut plan, &opts) {
        Ok(ready) => {
            if let Err(e) = exec.rec.finish_boot(BootOutcome::Ok) {
                log::warn!("boot report: {e}");
            }
            log::info!(
                "BENCH init={:.3} attached={:.3}",
                started,
                boot::pid1::uptime()
            );
            hand_over(&a, &plan, &ready)
        }
        Err(failed) => {
            let chain = failed.chain();
            if let Err(e) = exec
                .rec
                .finish_boot(BootOutcome::failed(failed.step, &chain))
            {
                log::warn!("boot report: {e}");
            }
            failed_line(&failure_text(&failed), &plan.secrets())
        }
    }
}

/// The one failure line's text (after "netboot attach: ").
pub fn failure_text(e: &StepError) -> String {
    format!(
        "boot failed at {}: {} [{}]",
        e.step,
        e.chain(),
        e.kind.name()
    )
}

/// Print `netboot attach: TEXT` on stderr and to /dev/kmsg (so it reaches
/// the console whatever the caller does with stderr), with the plan's
/// secrets redacted and control characters escaped; exit 1.
fn failed_line(text: &str, secrets: &[String]) -> i32 {
    let redactor = crate::plan::secret::Redactor::new(secrets.to_vec());
    let line = format!(
        "netboot {CMD}: {}",
        super::common::escape_controls(&redactor.redact(text))
    );
    eprintln!("{line}");
    if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        // Priority 3 (err); kmsg takes one record per write.
        let _ = k.write_all(format!("<3>{line}\n").as_bytes());
    }
    Exit::Failure as i32
}

/// The assignments the caller reads (pure: the values are quoted for a
/// POSIX shell and control characters escaped, so `eval` of the output is
/// safe whatever a config server put into a target name).
pub fn assignments(plan: &crate::plan::BootPlan, r: &RootReady) -> String {
    let fstype = r.root.fstype.clone().unwrap_or_default();
    let flags = plan.root.flags.clone().unwrap_or_default();
    let pairs: [(&str, String); 8] = [
        ("NETBOOT_ROOT", r.root.dev_path.display().to_string()),
        ("NETBOOT_FSTYPE", fstype),
        ("NETBOOT_ROOTFLAGS", flags),
        (
            "NETBOOT_RO",
            if plan.root.read_only { "1" } else { "0" }.to_string(),
        ),
        ("NETBOOT_DISK", r.disk.clone()),
        ("NETBOOT_SID", r.sid.to_string()),
        ("NETBOOT_TARGET", r.target.clone()),
        ("NETBOOT_IFACE", r.iface.clone().unwrap_or_default()),
    ];
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
        .collect()
}

/// initramfs-tools' variables for `/conf/param.conf` (pure).
pub fn param_conf_lines(r: &RootReady) -> String {
    let mut s = format!(
        "ROOT={}\n",
        shell_quote(&r.root.dev_path.display().to_string())
    );
    if let Some(t) = &r.root.fstype {
        s.push_str(&format!("ROOTFSTYPE={}\n", shell_quote(t)));
    }
    s
}

/// `'…'` with `'` as `'\''`; control characters escaped first (one line).
pub fn shell_quote(v: &str) -> String {
    let v = crate::escape::escape_controls(v);
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn hand_over(a: &Args<'_>, plan: &crate::plan::BootPlan, r: &RootReady) -> i32 {
    let text = assignments(plan, r);
    let run = Path::new(RUN_DIR);
    let mut problems = Vec::new();
    if let Err(e) =
        std::fs::create_dir_all(run).and_then(|()| std::fs::write(run.join("root.env"), &text))
    {
        problems.push(format!("{RUN_DIR}/root.env: {e}"));
    }
    let link = run.join("root");
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(&r.root.dev_path, &link) {
        problems.push(format!("{}: {e}", link.display()));
    }
    if a.framework == Framework::InitramfsTools {
        let file = a
            .param_conf
            .map_or_else(|| PathBuf::from(PARAM_CONF), PathBuf::from);
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(param_conf_lines(r).as_bytes()));
        if let Err(e) = res {
            // The caller cannot find the root without it: a failure.
            return failed_line(
                &format!(
                    "root device {} present, but {}: {e}",
                    r.root.dev_path.display(),
                    file.display()
                ),
                &plan.secrets(),
            );
        }
    }
    for p in problems {
        log::warn!("{p}");
    }
    log::info!(
        "root device {} ({}) present on session {}",
        r.root.dev_path.display(),
        r.root.fstype.as_deref().unwrap_or("type unknown"),
        r.sid
    );
    print_stdout(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn ready() -> RootReady {
        RootReady::for_tests(
            crate::disk::resolve::Root {
                dev_path: "/dev/sda1".into(),
                name: "sda1".into(),
                fstype: Some("ext4".into()),
                uuid: None,
                label: Some("nbroot".into()),
                partn: Some(1),
            },
            "sda",
            3,
            "iqn.2026-11.test:it's",
        )
    }

    #[test]
    fn arguments_are_checked_and_never_echo_a_positional() {
        let a = os(&["--for", "initramfs-tools", "--param-conf", "/tmp/p"]);
        let got = parse(&a).unwrap();
        assert_eq!(got.framework, Framework::InitramfsTools);
        assert!(matches!(
            parse(&os(&["--for", "dracut"])),
            Err(ArgError::Usage(m)) if m.contains("want shell or initramfs-tools")
        ));
        assert!(matches!(
            parse(&os(&["--param-conf", "/x"])),
            Err(ArgError::Usage(m)) if m.contains("needs --for initramfs-tools")
        ));
        let secret = os(&["iscsi=u:hunter2@h::3260:1:iqn.x"]);
        assert!(matches!(parse(&secret), Err(ArgError::Usage(m)) if !m.contains("hunter2")));
        assert!(matches!(
            parse(&os(&["--cmdline", "a", "--cmdline-file", "b"])),
            Err(ArgError::Usage(_))
        ));
    }

    #[test]
    fn assignments_quote_for_a_shell_and_stay_one_per_line() {
        let plan =
            crate::cmdline::parse_plan("iscsi=h::3260:1:iqn.x root=LABEL=nbroot ro").unwrap();
        let got = assignments(&plan, &ready());
        assert_eq!(
            got,
            "NETBOOT_ROOT='/dev/sda1'\nNETBOOT_FSTYPE='ext4'\nNETBOOT_ROOTFLAGS=''\n\
             NETBOOT_RO='1'\nNETBOOT_DISK='sda'\nNETBOOT_SID='3'\n\
             NETBOOT_TARGET='iqn.2026-11.test:it'\\''s'\nNETBOOT_IFACE='eth0'\n"
        );
        assert_eq!(
            param_conf_lines(&ready()),
            "ROOT='/dev/sda1'\nROOTFSTYPE='ext4'\n"
        );
        assert_eq!(shell_quote("a\nb"), "'a\\nb'");
    }
}
