//! Moving batches to the compute device. On CUDA a batch is first copied into pinned (page-locked)
//! host memory so the transfer to the GPU is a non-blocking DMA that overlaps the work already
//! queued on the GPU, as PyTorch's `DataLoader(pin_memory=True)` + `.to(device, non_blocking=True)`.

use tch::{Device, Tensor};

/// `batch` (on the CPU) on `device`.
pub fn upload(batch: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) => {
            let pinned = if batch.is_pinned(device) {
                batch
            } else {
                batch.pin_memory(device)
            };
            pinned.to_device_(device, pinned.kind(), true, false)
        }
        _ => batch.to_device(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn upload_to_the_cpu_keeps_the_values() {
        let t = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([2, 3]);
        let u = upload(t.shallow_clone(), Device::Cpu);
        assert_eq!(u.device(), Device::Cpu);
        assert!(u.equal(&t));
    }
}
