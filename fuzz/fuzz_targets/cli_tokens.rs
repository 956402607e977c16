//! The command-line value parser and everything downstream of it: tokens (one per input line, so a
//! token may hold spaces, like a quoted shell word) -> `--KEY VALUE` pairs -> merged into a base
//! config the way `load` re-applies the command line -> search space.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metricbench::{args::CommonArgs, cli_values, config};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tokens: Vec<String> = text.split('\n').map(str::to_string).collect();
    let parsed = cli_values::parse(&tokens);
    // CommonArgs must agree with the plain parser on what is an error (it only adds category lists).
    let _ = CommonArgs::from_tokens(&tokens);
    let Ok(values) = parsed else {
        return;
    };
    let cli = config::cli_mapping(&values);
    let base = common::base();
    let only_existing = config::MergeOptions {
        max_depth: None,
        scope: config::KeyScope::OnlyExisting,
    };
    if let Ok(merged) = config::merge_with(&base, &cli, only_existing, "cli") {
        // Re-applying the command line is how `load` treats every later file.
        let _ = config::merge_with(&merged, &cli, only_existing, "cli");
        common::check_space(&merged);
    }
    if let Ok(resolved) = config::resolve(&cli, "cli") {
        common::check_space(&resolved);
    }
});
