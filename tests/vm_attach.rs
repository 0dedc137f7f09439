//! `netboot attach` and `netboot detach` in the VM, inside a stand-in for
//! another init (tests/attach/init.sh as /init, busybox, the agent as
//! /bin/netboot): the NIC's driver loaded, the link renamed `ens3` and given
//! 198.18.0.2/24 by "the caller" before the agent runs. The command line
//! asks for `ip=dhcp` and the rig runs no DHCP server, so only the
//! caller's address can make the first attach succeed. Then: detach
//! (logout, session gone), attach again the initramfs-tools way (ROOT= in
//! /conf/param.conf), mount, a refused detach of the mounted root, and
//! switch_root to the rig's root image, whose init reports the session.
//!
//! Same rig as tests/vm.rs (`qemu/boot.sh`, tgtd `iqn.2026-11.test:root`
//! LUN 1 = plain.img, ext4 label `nbroot`), 6.1 kernel, CHAP. Prerequisites
//! as in tests/vm.rs; `NETBOOT_REQUIRE_VM=1` turns a skip into a failure.
#![allow(clippy::panic)] // a failing test panics (shipped code may not: Cargo.toml)

mod support;
mod vm_support;

use vm_support::*;

const SECRET: &str = "attachsecret42";

fn attach_initrd(kernel: &str) -> std::path::PathBuf {
    netboot_initrd_with(
        kernel,
        "netboot-attach",
        &["--busybox", "--extra-init", "tests/attach/init.sh"],
    )
}

/// The value after `KEY ` on the line that starts with it.
fn line<'c>(b: &'c Booted, key: &str) -> &'c str {
    b.console
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::trim))
        .unwrap_or_else(|| panic!("no {key:?} line\n{}", b.tail()))
}

#[test]
fn attach_detach_and_attach_again_inside_another_init() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(Vm {
        name: "attach-detach",
        kernel: "6.1",
        initrd: attach_initrd("6.1"),
        image: plain_image(),
        chap: Some(format!("attachuser:{SECRET}")),
        mutual: None,
        append: format!(
            "iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root rd.iscsi.username=attachuser \
             rd.iscsi.password={SECRET} root=LABEL=nbroot ip=dhcp netboot.timeout=30"
        ),
        configd: None,
    });
    b.assert_root_ok();
    b.assert_no_secret(&[SECRET]);
    assert_eq!(line(&b, "ATTACH-PRECONFIGURED"), "52:54:00:12:34:56");
    // The caller's link was used as it was: no DHCP, found under its new name.
    assert_eq!(line(&b, "ATTACH-FIRST"), "rc=0");
    assert!(
        b.console
            .contains("ens3 already has 198.18.0.2/24 (configured before netboot): using it"),
        "{}",
        b.tail()
    );
    for want in [
        "NETBOOT_ROOT='/dev/sda'",
        "NETBOOT_FSTYPE='ext4'",
        "NETBOOT_RO='1'",
        "NETBOOT_DISK='sda'",
        "NETBOOT_TARGET='iqn.2026-11.test:root'",
        "NETBOOT_IFACE='ens3'",
    ] {
        assert!(
            b.console
                .lines()
                .any(|l| l.trim() == format!("ATTACH-OUT {want}")),
            "stdout lacks {want}\n{}",
            b.tail()
        );
        assert!(
            line(&b, "ATTACH-ROOT-ENV").contains(want),
            "root.env lacks {want}"
        );
    }
    assert_eq!(line(&b, "ATTACH-LINK"), "/dev/sda");
    // detach: logout answered, session destroyed, sysfs empty.
    assert_eq!(line(&b, "ATTACH-DETACH"), "rc=0");
    assert!(
        b.console
            .contains("session1 (iqn.2026-11.test:root): logged out, destroyed"),
        "{}",
        b.tail()
    );
    assert_eq!(line(&b, "ATTACH-SESSIONS-AFTER-DETACH"), "0");
    // Attached again, initramfs-tools style.
    assert_eq!(line(&b, "ATTACH-SECOND"), "rc=0");
    assert_eq!(
        line(&b, "ATTACH-PARAM"),
        "ROOT='/dev/sda' ROOTFSTYPE='ext4'"
    );
    assert_eq!(line(&b, "ATTACH-MOUNT"), "rc=0");
    // The mounted root is not detached.
    assert_eq!(line(&b, "ATTACH-REFUSED"), "rc=1");
    let refused = line(&b, "ATTACH-REFUSED-LINE");
    assert!(
        refused.starts_with(
            "netboot detach: session2 (iqn.2026-11.test:root): sda is mounted on /new_root"
        ),
        "{refused}"
    );
    // The root's init sees the second session, with the CHAP user.
    assert_iscsi_report(&b, Some("attachuser"));
    let kv = b.iscsi();
    assert_eq!(kv.get("session").map(String::as_str), Some("session2"));
    let bj = boot_json(&b);
    assert!(
        step_of(&bj, "net.link").is_some(),
        "boot.json has no net.link step: {bj}"
    );
}

#[test]
fn attach_failure_is_one_line_with_exit_1() {
    let Some(_vm) = prepare("6.1", false) else {
        return;
    };
    let b = boot(Vm {
        name: "attach-wrong-secret",
        kernel: "6.1",
        initrd: attach_initrd("6.1"),
        image: plain_image(),
        chap: Some(format!("attachuser:{SECRET}")),
        mutual: None,
        append: "iscsi=198.18.0.1::3260:1:iqn.2026-11.test:root rd.iscsi.username=attachuser \
                 rd.iscsi.password=wrongsecret4242 root=LABEL=nbroot ip=dhcp netboot.timeout=30"
            .into(),
        configd: None,
    });
    assert_eq!(line(&b, "ATTACH-FIRST"), "rc=1", "{}", b.tail());
    // The first attach's lines (the script tries a second one later).
    let fails: Vec<&str> = b
        .console
        .lines()
        .take_while(|l| !l.starts_with("ATTACH-FIRST"))
        .filter(|l| l.contains("netboot attach: boot failed at iscsi.login:"))
        .collect();
    // stderr (the console here) and kmsg: the same line, twice at most.
    assert!(
        !fails.is_empty() && fails.len() <= 2,
        "{fails:?}\n{}",
        b.tail()
    );
    assert!(
        fails[0].contains("authentication failed for user \"attachuser\""),
        "{fails:?}"
    );
    assert!(fails[0].trim_end().ends_with("[fatal]"), "{fails:?}");
    b.assert_no_secret(&["wrongsecret4242", SECRET]);
}
