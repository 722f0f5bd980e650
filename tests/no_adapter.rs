//! With no usable adapter, opening a device fails with instructions instead of passing.
//! Alone in its binary, since it changes the process environment.

#[test]
fn no_adapter_is_an_error_with_instructions() {
    // SAFETY: the only test of this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("WGPU_ADAPTER_NAME", "no adapter has this name 7f3a") };
    let e = wgpu_batchnorm::HeadlessGpu::open().unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, wgpu_batchnorm::BatchNormError::NoAdapter { .. }),
        "{msg}"
    );
    assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
    assert!(msg.contains("no adapter has this name 7f3a"), "{msg}");
}
