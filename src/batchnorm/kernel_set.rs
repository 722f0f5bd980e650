//! One kernel set per device, element type and reduction, shared by every layer built on
//! them: the pipelines (which depend on nothing else; a layer's configuration reaches the
//! GPU through the `Params` uniform), the unused-binding buffer, the cache of parameter
//! buffers and the scratch memory. The second to fifty-third batch norm of a ResNet-50
//! compiles nothing.

use std::sync::{Arc, Weak};

use super::*;

/// The scratch memory of a kernel set, grown on demand (see `steps.rs`).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) partials: Option<wgpu::Buffer>,
    pub(super) chan: Option<wgpu::Buffer>,
    /// The two running records per channel of a folded plan (`Plan::fold`).
    pub(super) folded: Option<wgpu::Buffer>,
}

/// What the layers of one device, element type and reduction share.
pub(super) struct KernelSet {
    device: wgpu::Device,
    subgroups: bool,
    f16: bool,
    pub(super) pipelines: Pipelines,
    /// Bound where a kernel's binding is unused.
    pub(super) dummy: wgpu::Buffer,
    /// Calls of several layers may share the scratch memory for the reason that calls of
    /// one layer may: each call's dispatches run in queue order (see [`BatchNorm`]).
    pub(super) scratch: Mutex<Scratch>,
    /// Parameter buffers by their contents, which include everything a layer's
    /// configuration puts there.
    pub(super) params: Mutex<HashMap<[u32; 16], wgpu::Buffer>>,
}

/// The live kernel sets. Weak, so that a set (and the device it holds) is dropped with
/// its last layer; dead entries are removed on the next lookup.
static SETS: Mutex<Vec<Weak<KernelSet>>> = Mutex::new(Vec::new());

impl KernelSet {
    /// The kernel set of `device` for `subgroups` and `f16`: a live one if a layer holds
    /// it, else built now (inside an error scope: wgpu's errors come back as `Err`).
    pub(super) fn get(device: &wgpu::Device, subgroups: bool, f16: bool) -> Result<Arc<Self>> {
        let mut sets = SETS.lock().unwrap_or_else(|e| e.into_inner());
        sets.retain(|w| w.strong_count() > 0);
        let live = sets
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| s.device == *device && s.subgroups == subgroups && s.f16 == f16);
        if let Some(set) = live {
            return Ok(set);
        }
        let set = scoped(device, || {
            let pipelines = Pipelines::new(device, subgroups, f16);
            let dummy = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-batchnorm.unused-binding"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            Ok(Arc::new(Self {
                device: device.clone(),
                subgroups,
                f16,
                pipelines,
                dummy,
                scratch: Mutex::default(),
                params: Mutex::default(),
            }))
        })?;
        sets.push(Arc::downgrade(&set));
        Ok(set)
    }
}
