//! Config file loading: YAML text -> top-level map -> merged into a base config (all keys, only
//! existing keys, depth 0) -> search space, midpoints and substitution.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metricbench::config;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = config::parse_yaml_map(text, "fuzz.yaml") else {
        return;
    };
    let base = common::base();
    if let Ok(merged) = config::merge(&base, &file, "fuzz.yaml") {
        common::check_space(&merged);
        // Merging the same file again must also be safe (a later file of the same category).
        let _ = config::merge(&merged, &file, "fuzz.yaml");
    }
    if let Ok(resolved) = config::resolve(&file, "fuzz.yaml") {
        common::check_space(&resolved);
    }
    for scope in [config::KeyScope::OnlyExisting, config::KeyScope::OnlyNew] {
        let options = config::MergeOptions {
            max_depth: Some(0),
            scope,
        };
        let _ = config::merge_with(&base, &file, options, "fuzz.yaml");
    }
});
