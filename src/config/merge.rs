//! A validated [`Config`] into a [`BootPlan`].
//!
//! Precedence, field by field of the key table ([`PlanField`]): a field
//! the kernel command line sets explicitly (any of its aliases, from
//! [`explicit_keys`]) keeps the command line's value; otherwise the config's
//! value, if it has one, replaces the default. Two fields go by the parsed
//! plan instead of the keys:
//! - `paths`: used only when the plan has no root path and no
//!   `netroot=dhcp` / `root=dhcp` (`root=` carries paths as well as
//!   devices, so its key alone does not say);
//! - `chap`: skipped if any of the four CHAP fields was given (the pair
//!   and its mutual half are one setting).
//!
//! Afterwards the config's paths get the plan's default CHAP where they have
//! none, and every path without its own TPGT gets the plan-wide one
//! ([`BootPlan::apply_tpgt`]): so `iscsi.tpgt` reaches the command line's
//! paths too, unless `rd.iscsi.target.group=` was given.

use super::schema::Config;
use crate::cmdline::keys::{self, PlanField};
use crate::plan::BootPlan;
use std::collections::BTreeSet;

/// The plan fields a kernel command line sets explicitly, for [`apply`].
pub fn explicit_keys(cmdline: &str) -> BTreeSet<PlanField> {
    keys::explicit_fields(cmdline)
}

/// Merge `config` into `plan`. `explicit` are the fields the command line
/// gave ([`explicit_keys`]). Call after `parse_plan` on the same cmdline.
pub fn apply(config: &Config, plan: &mut BootPlan, explicit: &BTreeSet<PlanField>) {
    let set = |field: PlanField| !explicit.contains(&field);
    fn put<T: Clone>(dst: &mut T, src: &Option<T>, allowed: bool) {
        if let (Some(v), true) = (src, allowed) {
            *dst = v.clone();
        }
    }
    let chap_fields = [
        PlanField::ChapUsername,
        PlanField::ChapPassword,
        PlanField::MutualUsername,
        PlanField::MutualPassword,
    ];
    if config.chap.is_some() && chap_fields.iter().all(|&f| set(f)) {
        plan.iscsi.chap = config.chap.clone();
    }
    put(&mut plan.iscsi.tpgt, &config.tpgt, set(PlanField::Tpgt));
    if let Some(paths) = &config.paths {
        if plan.paths.is_empty() && !plan.root_path_from_dhcp {
            plan.paths = paths.clone();
            for p in &mut plan.paths {
                if p.chap.is_none() {
                    p.chap = plan.iscsi.chap.clone();
                }
            }
        }
    }
    plan.apply_tpgt();
    if config.initiator.is_some() && set(PlanField::Initiator) {
        plan.initiator = config.initiator.clone();
    }
    put(&mut plan.network.ip, &config.ip, set(PlanField::Ip));
    put(
        &mut plan.network.nameservers,
        &config.nameservers,
        set(PlanField::Nameservers),
    );
    put(
        &mut plan.root.device,
        &config.root_device,
        set(PlanField::RootDevice),
    );
    if config.root_fstype.is_some() && set(PlanField::RootFstype) {
        plan.root.fstype = config.root_fstype.clone();
    }
    put(
        &mut plan.root.flags,
        &config.root_flags,
        set(PlanField::RootFlags),
    );
    put(
        &mut plan.root.read_only,
        &config.root_read_only,
        set(PlanField::ReadOnly),
    );
    if config.init_path.is_some() && set(PlanField::InitPath) {
        plan.init.path = config.init_path.clone();
    }
    put(
        &mut plan.init.args,
        &config.init_args,
        set(PlanField::InitArgs),
    );
    if config.scheduler.is_some() && set(PlanField::Scheduler) {
        plan.tuning.scheduler = config.scheduler.clone();
    }
    if config.nr_requests.is_some() && set(PlanField::NrRequests) {
        plan.tuning.nr_requests = config.nr_requests;
    }
    put(
        &mut plan.tuning.queue_depth,
        &config.queue_depth,
        set(PlanField::QueueDepth),
    );
    put(
        &mut plan.tuning.cmds_max,
        &config.cmds_max,
        set(PlanField::CmdsMax),
    );
    put(
        &mut plan.iscsi.login_retry_max,
        &config.login_retry_max,
        set(PlanField::LoginRetryMax),
    );
    put(
        &mut plan.iscsi.node_params,
        &config.node_params,
        set(PlanField::NodeParams),
    );
    put(
        &mut plan.iscsi.login_params,
        &config.login_params,
        set(PlanField::LoginParams),
    );
    put(
        &mut plan.timeout_ms,
        &config.timeout_ms,
        set(PlanField::Timeout),
    );
    put(&mut plan.on_fail, &config.on_fail, set(PlanField::OnFail));
    put(
        &mut plan.reboot_delay_ms,
        &config.reboot_delay_ms,
        set(PlanField::RebootDelay),
    );
    put(&mut plan.log, &config.log, set(PlanField::Log));
    put(&mut plan.events, &config.events, set(PlanField::Events));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline;
    use crate::plan::FailurePolicy;

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).expect("valid config")
    }

    fn merged(json: &str, line: &str) -> BootPlan {
        let mut plan = cmdline::parse_plan(line).expect("plan");
        apply(&config(json), &mut plan, &explicit_keys(line));
        plan
    }

    #[test]
    fn apply_precedence() {
        let c = config(crate::config::schema::tests::FULL);
        // Command line sets scheduler, timeout and a root path: those win.
        let line = "netboot.scheduler=mq-deadline netboot.timeout=5 iscsi=10.0.0.9::::iqn.x:y netboot.on-fail=halt";
        let mut plan = cmdline::parse_plan(line).expect("plan");
        apply(&c, &mut plan, &explicit_keys(line));
        assert_eq!(plan.tuning.scheduler.as_deref(), Some("mq-deadline"));
        assert_eq!(plan.timeout_ms, 5000);
        assert_eq!(plan.on_fail, FailurePolicy::Halt);
        assert_eq!(plan.paths.len(), 1);
        assert_eq!(plan.paths[0].server, "10.0.0.9");
        // Everything else comes from the config.
        assert_eq!(plan.tuning.queue_depth, 64);
        assert_eq!(plan.reboot_delay_ms, 2_500);
        assert_eq!(
            plan.initiator.as_deref(),
            Some("iqn.2024-01.org.example:host1")
        );
        assert_eq!(plan.events, None);
        assert!(!plan.root.read_only);
        assert_eq!(
            plan.iscsi.chap.as_ref().map(|c| c.username.as_str()),
            Some("d")
        );

        // Without cmdline paths the config's paths are used, in order; the
        // second gets the default CHAP.
        let mut plan = cmdline::parse_plan("ro").expect("plan");
        apply(&c, &mut plan, &explicit_keys("ro"));
        assert_eq!(plan.paths.len(), 2);
        assert!(plan.root.read_only, "explicit ro wins over read_only=false");
        assert_eq!(
            plan.paths[1].chap.as_ref().map(|c| c.username.as_str()),
            Some("d")
        );
        let json = serde_json::to_string(&plan).expect("json");
        assert!(!json.contains("hunter2") && !json.contains("defaultpw"));
    }

    #[test]
    fn every_alias_of_a_field_wins() {
        let json = r#"{"version":1,"initiator":"iqn.2024-01.org.example:cfg",
                       "chap":{"username":"cfg","password":"cfgpw"},"tuning":{"queue_depth":64}}"#;
        for line in [
            "rd.iscsi.initiator=iqn.a:cmd",
            "iscsi_initiator=iqn.a:cmd",
            "netboot.initiator=iqn.a:cmd",
        ] {
            assert_eq!(
                merged(json, line).initiator.as_deref(),
                Some("iqn.a:cmd"),
                "{line}"
            );
        }
        // `-` and `_` are one key.
        assert_eq!(merged(json, "netboot.queue-depth=8").tuning.queue_depth, 8);
        // Any CHAP half keeps the config's pair out (the line's is incomplete
        // without the other half, so give both).
        let p = merged(json, "iscsi_username=cmd iscsi_password=pw");
        assert_eq!(p.iscsi.chap.map(|c| c.username), Some("cmd".to_string()));
        let p = merged(json, "");
        assert_eq!(p.iscsi.chap.map(|c| c.username), Some("cfg".to_string()));
    }

    #[test]
    fn init_args_after_dashes_win() {
        let json = r#"{"version":1,"init":{"args":["single"]}}"#;
        assert_eq!(merged(json, "-- emergency").init.args, ["emergency"]);
        assert_eq!(merged(json, "--").init.args, ["single"]);
    }

    #[test]
    fn flags_can_be_cleared() {
        let json = r#"{"version":1,"root":{"flags":""}}"#;
        assert_eq!(merged(json, "").root.flags, None);
        assert_eq!(
            merged(json, "rootflags=noatime").root.flags.as_deref(),
            Some("noatime")
        );
    }

    /// The config's `iscsi.tpgt` reaches every path without its own TPGT
    /// (it used to set `plan.iscsi.tpgt` only, after the paths had theirs).
    #[test]
    fn config_tpgt_applies_to_paths_without_their_own() {
        let json = r#"{"version":1,"iscsi":{"tpgt":7}}"#;
        let p = merged(json, "iscsi=198.18.0.1::::iqn.a:x");
        assert_eq!((p.iscsi.tpgt, p.paths[0].tpgt), (7, 7));
        // The command line's rd.iscsi.target.group= wins.
        let p = merged(json, "iscsi=198.18.0.1::::iqn.a:x rd.iscsi.target.group=5");
        assert_eq!((p.iscsi.tpgt, p.paths[0].tpgt), (5, 5));
        // Config paths: a path's own tpgt wins over both.
        let json = r#"{"version":1,"iscsi":{"tpgt":7},"paths":[
                        {"server":"198.18.0.1","target":"iqn.a:x","tpgt":3},
                        {"server":"198.18.0.2","target":"iqn.a:x"}]}"#;
        let p = merged(json, "");
        assert_eq!((p.paths[0].tpgt, p.paths[1].tpgt), (3, 7));
        let p = merged(json, "rd.iscsi.target.group=5");
        assert_eq!((p.paths[0].tpgt, p.paths[1].tpgt), (3, 5));
        // No TPGT anywhere: 1.
        let p = merged(r#"{"version":1,"paths":[{"server":"h","target":"t"}]}"#, "");
        assert_eq!(p.paths[0].tpgt, 1);
    }

    #[test]
    fn minimal_config_changes_nothing() {
        let c = config(r#"{"version":1}"#);
        let mut plan = BootPlan::default();
        apply(&c, &mut plan, &BTreeSet::new());
        assert_eq!(plan, BootPlan::default());
    }
}
