// Shared by both targets: what happens to a config map after it is merged.

use metricbench::config;
use metricbench::search_space::SearchSpace;
use serde_yaml::Mapping;

/// A base config shaped like the shipped defaults, for overlays to merge into.
pub fn base() -> Mapping {
    serde_yaml::from_str(
        "dataset: {Synthetic: {num_classes: 20}}\n\
         models: {trunk: {MLP: {layer_sizes: [8]}}, embedder: {MLP: null}}\n\
         optimizers: {trunk_optimizer: {Adam: {lr: 0.001, weight_decay: 0.0001}}}\n\
         loss_funcs: {metric_loss: {ContrastiveLoss: null}}\n\
         transforms: {train: {A: 1, B: {x: [1, 2]}}}\n\
         sampler: {MPerClassSampler: {m: 4}}\n\
         mining_funcs: {}\n\
         patience: 9\n",
    )
    .expect("valid base")
}

/// Extracts the search space; a valid space must substitute cleanly at its midpoints, leave no
/// search keyword behind, and the result must convert to JSON whenever the input did.
pub fn check_space(merged: &Mapping) {
    let Ok(space) = SearchSpace::from_config(merged) else {
        return;
    };
    let mid = space.midpoints();
    let concrete = space
        .substitute(merged, &mid)
        .unwrap_or_else(|e| panic!("midpoints of a valid space must substitute: {e:#}"));
    let again = SearchSpace::from_config(&concrete).expect("substituted config is valid");
    assert!(
        again.is_empty(),
        "keywords left after substitution: {:?}",
        again.names()
    );
    let _ = space.to_json();
    let _ = space.table();
    let as_value = serde_yaml::Value::Mapping(merged.clone());
    if config::yaml_to_json(&as_value).is_ok() {
        config::yaml_to_json(&serde_yaml::Value::Mapping(concrete)).expect("still JSON-able");
    }
}
