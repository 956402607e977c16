//! What a new user meets first: the help of each command, and a quiet set-up.

use metricbench::flags::{self, FLAGS};
use std::path::PathBuf;
use std::process::Command;

fn metricbench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_help_lists_every_flag_on_its_own_line_with_its_default() {
    for (command, mask) in [
        ("run", flags::RUN),
        ("tune", flags::TUNE),
        ("config", flags::CONFIG),
    ] {
        let (ok, help) = metricbench(&[command, "--help"]);
        assert!(ok, "{help}");
        assert!(!help.contains("[ARGS]"), "{command}: {help}");
        for f in FLAGS.iter().filter(|f| f.commands & mask != 0) {
            let synopsis = flags::synopsis(f);
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{synopsis} ")))
                .unwrap_or_else(|| panic!("{command} --help has no line for {synopsis}:\n{help}"));
            assert!(line.contains(f.help), "{line}");
            if let Some(default) = f.default {
                assert!(line.contains(&format!("[default: {default}]")), "{line}");
            }
        }
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with("--KEY VALUE")),
            "{help}"
        );
        let examples = help.split("Examples:\n").nth(1).unwrap_or_default();
        assert!(
            examples.matches(&format!("metricbench {command} ")).count() >= 2,
            "{command}: {help}"
        );
    }
    // Flags of other commands are not listed.
    let (_, run) = metricbench(&["run", "--help"]);
    assert!(!run.contains("--bayes_opt_iters"), "{run}");
    // The grouped help still leaves any --KEY VALUE to the config.
    let (ok, shown) = metricbench(&["config", "--batch_size", "77"]);
    assert!(ok, "{shown}");
    assert!(shown.contains("batch_size: 77"), "{shown}");
}

#[test]
fn eval_embeddings_help_names_the_command_the_user_typed() {
    let worker =
        PathBuf::from(env!("CARGO_BIN_EXE_metricbench")).with_file_name("metricbench-worker");
    if !worker.is_file() {
        println!(
            "skipped: {} is not built (cargo build --workspace builds it)",
            worker.display()
        );
        return;
    }
    let (ok, help) = metricbench(&["eval-embeddings", "--help"]);
    assert!(ok, "{help}");
    assert!(
        help.contains("usage: metricbench eval-embeddings"),
        "{help}"
    );
    assert!(!help.contains("metricbench-worker"), "{help}");
}

#[test]
fn setting_up_libtorch_prints_no_python_warnings() {
    if std::env::var_os("LIBTORCH").is_some() {
        println!("skipped: LIBTORCH is set, so scripts/setup-libtorch.sh installs nothing");
        return;
    }
    let cache = std::env::var_os("METRICBENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("metricbench"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/metricbench")))
        .unwrap();
    if !cache.join("torch-2.13.0/.metricbench-ready").is_file() {
        // A test must not start a 4.7 GB download; scripts/test.sh provisions it first.
        println!(
            "skipped: libtorch's environment is not in {} yet",
            cache.display()
        );
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-libtorch.sh");
    let out = Command::new(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[setup-libtorch] torch 2.13.0"), "{stderr}");
    for noise in ["Warning", "warning", "Failed to initialize NumPy"] {
        assert!(!stderr.contains(noise), "{stderr}");
    }
}
