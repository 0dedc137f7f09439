//! Fuzz the command-line parser: arbitrary bytes (as /proc/cmdline may hold)
//! must give a plan or an error, never a panic, and both must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match netboot::cmdline::parse_plan(&line) {
        Ok(plan) => {
            let json = serde_json::to_value(&plan).unwrap_or_default();
            // Every CHAP secret reaches the JSON as "***", never in clear.
            let paths = json["paths"].as_array().cloned().unwrap_or_default();
            for p in paths.iter().chain([&json["iscsi"]]) {
                let chap = &p["chap"];
                if !chap.is_null() {
                    assert_eq!(chap["password"], "***");
                    if !chap["mutual"].is_null() {
                        assert_eq!(chap["mutual"]["password"], "***");
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
