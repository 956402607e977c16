//! `TorchScript: {path: model.pt}`: any network exported from PyTorch with `torch.jit.script` or
//! `torch.jit.trace` and saved. Its parameters join the trunk's variables, so the trunk optimizer
//! fine-tunes them and checkpoints save them (BatchNorm running statistics live inside the module
//! and are not part of checkpoints). The output width is found by running the module once on a
//! zero batch of the dataset's sample shape; it must be `[batch, features]`.

use super::layers::Mode;
use crate::errors::config_error;
use anyhow::Result;
use std::path::Path;
use std::sync::Mutex;
use tch::{nn, Kind, Tensor, TrainableCModule};

pub struct TorchScript {
    /// The module and whether it is in training mode (switching needs `&mut`).
    module: Mutex<(TrainableCModule, bool)>,
    pub output_dim: i64,
}

impl TorchScript {
    pub fn load(p: &nn::Path, file: &Path, sample_shape: &[i64]) -> Result<TorchScript> {
        if !file.is_file() {
            return Err(config_error(format!(
                "TorchScript trunk: {} does not exist (or is not a file)",
                file.display()
            )));
        }
        let mut module = TrainableCModule::load(file, p.clone()).map_err(|e| {
            config_error(format!(
                "cannot load {} as a TorchScript module (save it with \
                 torch.jit.script(model).save(path)): {e}",
                file.display()
            ))
        })?;
        module.set_eval();
        let mut shape = vec![2];
        shape.extend_from_slice(sample_shape);
        let probe = Tensor::zeros(&shape, (Kind::Float, p.device()));
        let out = tch::no_grad(|| module.forward_ts(&[probe])).map_err(|e| {
            config_error(format!(
                "TorchScript trunk {} fails on a batch of shape {shape:?} (the dataset's samples): {e}",
                file.display()
            ))
        })?;
        if out.dim() != 2 || out.size()[0] != 2 || out.size()[1] < 1 {
            return Err(config_error(format!(
                "TorchScript trunk {} must output [batch, features]; on a batch of shape {shape:?} it \
                 gives {:?}",
                file.display(),
                out.size()
            )));
        }
        module.set_train();
        Ok(TorchScript {
            output_dim: out.size()[1],
            module: Mutex::new((module, true)),
        })
    }

    pub fn forward(&self, xs: &Tensor, mode: Mode) -> Tensor {
        let mut guard = self.module.lock().unwrap_or_else(|e| e.into_inner());
        let (module, train) = &mut *guard;
        if *train != mode.train {
            if mode.train {
                module.set_train();
            } else {
                module.set_eval();
            }
            *train = mode.train;
        }
        // The output shape was checked at load time on the same sample shape.
        module
            .forward_ts(&[xs])
            .unwrap_or_else(|e| panic!("TorchScript trunk failed: {e}"))
    }
}
