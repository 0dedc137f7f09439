//! Fuzz the command-line parser: arbitrary bytes (as /proc/cmdline may hold)
//! must give a plan or an error, never a panic, and both must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match netboot::cmdline::parse_plan(&line) {
        Ok(plan) => {
            let json = serde_json::to_string(&plan).unwrap_or_default();
            // Credentials never reach the JSON in clear.
            for p in &plan.paths {
                if let Some(chap) = &p.chap {
                    let s = chap.secret.expose();
                    if s.len() >= 8 {
                        assert!(!json.contains(&format!("\"{s}\"")));
                    }
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
    // Each root path on its own, too (others call it directly).
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("iscsi=") {
            let _ = netboot::cmdline::rootpath::parse(v).map_err(|e| e.to_string());
        }
    }
});
