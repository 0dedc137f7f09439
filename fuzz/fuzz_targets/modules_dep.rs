//! Fuzz the module index parsers, fnmatch and resolution: arbitrary text as
//! modules.dep / modules.alias / modules.softdep / modules.builtin must parse
//! or fail, never panic, and resolving every name must terminate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot::kmod::{self, ModuleIndex};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let p = Path::new("fuzz");
    // The same bytes as every table; also split in four to mix them.
    let parts: Vec<&str> = text.splitn(4, '\u{1}').collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or(&text);
    let dep = kmod::parse_dep(get(0), p).unwrap_or_default();
    let alias = kmod::parse_alias(get(1), p).unwrap_or_default();
    let soft = kmod::parse_softdep(get(2), p).unwrap_or_default();
    let builtin = kmod::parse_builtin(get(3));
    for line in text.lines().take(16) {
        let (a, b) = line.split_once(' ').unwrap_or((line, line));
        let _ = kmod::fnmatch(a, b);
        let _ = kmod::normalize_alias(a);
        let _ = kmod::module_name(b);
    }
    let names: Vec<String> = dep.iter().map(|d| d.path.clone()).take(32).collect();
    let idx = ModuleIndex::from_tables(p, dep, alias, soft, builtin);
    for n in &names {
        if let Ok(order) = idx.resolve(&[n.as_str()]) {
            // Each module once.
            let mut seen = std::collections::HashSet::new();
            assert!(order.iter().all(|m| seen.insert(m.name.clone())));
        }
    }
    let _ = idx.match_alias(get(0));
});
