//! Opening a headless device for tests, examples, benchmarks and quick use.

use crate::error::{BatchNormError, Result};

/// Features the crate uses when the adapter has them.
pub const USEFUL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::SHADER_F16);

/// A device opened without a window.
#[derive(Debug)]
pub struct HeadlessGpu {
    /// The adapter.
    pub adapter: wgpu::Adapter,
    /// The device, with the adapter's limits and the [`USEFUL_FEATURES`] it has.
    pub device: wgpu::Device,
    /// The device's queue.
    pub queue: wgpu::Queue,
}

impl HeadlessGpu {
    /// Opens a device: the adapter named by `WGPU_ADAPTER_NAME` (a case-insensitive
    /// substring) if set, else the default high-performance adapter, else a software
    /// (fallback) adapter, else any adapter; on the backends in `WGPU_BACKEND`
    /// (`vulkan`, `gl`, `metal`, `dx12`, comma-separated) if set, else all. Requests the
    /// adapter's real limits and the [`USEFUL_FEATURES`] it supports.
    pub fn open() -> Result<Self> {
        pollster::block_on(Self::open_async())
    }

    /// As [`HeadlessGpu::open`], requesting `limits` instead of the adapter's: for example
    /// `wgpu::Limits::default()`, the limits every WebGPU implementation guarantees, to see
    /// on a native adapter what a browser user gets, or [`minimum_limits`](crate::minimum_limits).
    pub fn open_with_limits(limits: wgpu::Limits) -> Result<Self> {
        pollster::block_on(Self::open_inner(Some(limits)))
    }

    /// As [`HeadlessGpu::open`], as a future.
    pub async fn open_async() -> Result<Self> {
        Self::open_inner(None).await
    }

    async fn open_inner(limits: Option<wgpu::Limits>) -> Result<Self> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pick_adapter(&instance, backends).await?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-batchnorm.headless"),
                required_features: adapter.features() & USEFUL_FEATURES,
                required_limits: limits.unwrap_or_else(|| adapter.limits()),
                ..Default::default()
            })
            .await?;
        Ok(Self {
            adapter,
            device,
            queue,
        })
    }

    /// One line naming the adapter, backend, driver and subgroup support, for logs.
    pub fn describe(&self) -> String {
        let i = self.adapter.get_info();
        format!(
            "{} ({:?}, {:?}, driver {} {}, subgroups {})",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info,
            if self.device.features().contains(wgpu::Features::SUBGROUP) {
                "yes"
            } else {
                "no"
            }
        )
    }
}

async fn pick_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
) -> Result<wgpu::Adapter> {
    let adapters = instance.enumerate_adapters(backends).await;
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lc = wanted.to_lowercase();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc))
            .ok_or_else(|| BatchNormError::NoAdapter {
                tried: format!(
                    "WGPU_ADAPTER_NAME={wanted:?} matches none of [{}] on backends {backends:?}",
                    names.join(", ")
                ),
            });
    }
    for force_fallback_adapter in [false, true] {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter,
            compatible_surface: None,
            apply_limit_buckets: false,
        };
        if let Ok(a) = instance.request_adapter(&options).await {
            return Ok(a);
        }
    }
    adapters
        .into_iter()
        .next()
        .ok_or_else(|| BatchNormError::NoAdapter {
            tried: format!("no adapter on backends {backends:?}"),
        })
}
