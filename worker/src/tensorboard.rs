//! TensorBoard event files (`<fold>/tensorboard_logs/events.out.tfevents.*`) with scalar
//! summaries. The writer lives in the protocol crate (`metricbench_protocol::tfevents`), which the
//! coordinator shares for a study's TensorBoard summaries.

pub use metricbench_protocol::tfevents::EventWriter;
