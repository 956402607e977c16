//! `metricbench components` runs the worker's registry and passes its output through.

use std::process::Command;

#[test]
fn components_passes_the_worker_registry_through() {
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .args(["components", "--format", "json"])
        .output()
        .expect("the coordinator runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON registry");
        let losses = v["losses"].as_array().expect("losses listed");
        assert!(losses.iter().any(|c| c["class"] == "TripletMarginLoss"));
        assert!(v["miners"].as_array().is_some_and(|m| !m.is_empty()));
    } else {
        // Without a built worker next to the coordinator the error must say how to get one.
        assert!(stderr.contains("metricbench-worker"), "{stderr}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .args(["components", "--format", "xml"])
        .output()
        .expect("the coordinator runs");
    assert!(!bad.status.success());
}
