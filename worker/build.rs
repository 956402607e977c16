//! Link settings that torch-sys does not provide for the final binary (see
//! docs/building.md): an rpath to libtorch's folder, so the worker runs without LD_LIBRARY_PATH, and
//! `-ltorch` outside `--as-needed`, because libtorch.so is what pulls in libtorch_cuda.so; without it
//! the linker drops CUDA silently and `device: cuda` would never find a GPU.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
