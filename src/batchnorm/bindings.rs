//! The buffers a call binds: which a configuration needs, and their size, alignment,
//! usage, limit and aliasing checks.

use super::*;

/// What a bound slice holds, which sets its expected size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The whole tensor (x, y, dy, dx).
    Tensor,
    /// One f32 per channel.
    PerChannel,
    /// One u32.
    Counter,
    /// One u64 (two u32 words, low first: a little-endian u64).
    Counter64,
    /// One statistics record (4 f32) per channel.
    Stats,
}

/// One bound slice of a call, for the size, alignment and aliasing checks.
pub(super) struct Bound<'a> {
    name: &'static str,
    slice: wgpu::BufferSlice<'a>,
    written: bool,
    kind: Kind,
}

impl BatchNorm {
    /// Sizes, alignment, usage, binding limits and aliasing of every bound slice. The
    /// tensor slices of an empty batch are not accessed and not checked.
    pub(super) fn check_bindings(&self, shape: &TensorShape, bound: &[Bound<'_>]) -> Result<()> {
        let numel = shape.numel() as u64;
        let channels = shape.channels() as u64;
        let align = self.limits.min_storage_buffer_offset_alignment;
        let bound: Vec<&Bound<'_>> = bound
            .iter()
            .filter(|b| numel > 0 || b.kind != Kind::Tensor)
            .collect();
        for b in &bound {
            let (expected, what) = match b.kind {
                Kind::Tensor => (
                    self.config.dtype.tensor_bytes(numel),
                    format!(
                        "{numel} {:?} for shape {:?}, rounded up to 4 bytes",
                        self.config.dtype,
                        shape.dims()
                    ),
                ),
                Kind::Counter => (4, "one u32".to_string()),
                Kind::Counter64 => (8, "one u64 (8 bytes, little-endian)".to_string()),
                Kind::Stats => (
                    channels * 16,
                    format!("{channels} records of 4 f32 (count, mean - shift, variance, shift)"),
                ),
                Kind::PerChannel => (channels * 4, format!("{channels} f32, one per channel")),
            };
            let usage = b.slice.buffer().usage();
            if !usage.contains(wgpu::BufferUsages::STORAGE) {
                return Err(BatchNormError::MissingStorageUsage {
                    name: b.name,
                    usage,
                });
            }
            if b.slice.size() != expected {
                return Err(BatchNormError::BufferSize {
                    name: b.name,
                    expected,
                    got: b.slice.size(),
                    what,
                });
            }
            if b.slice.offset() % u64::from(align) != 0 {
                return Err(BatchNormError::MisalignedOffset {
                    name: b.name,
                    offset: b.slice.offset(),
                    alignment: align,
                });
            }
            // Tensors larger than one binding are processed in pieces.
            if b.kind != Kind::Tensor {
                check_limit(
                    b.name,
                    expected,
                    "max_storage_buffer_binding_size",
                    self.limits.max_storage_buffer_binding_size,
                )?;
            }
        }
        for out in bound.iter().filter(|b| b.written) {
            for other in bound.iter().filter(|b| !std::ptr::eq(**b, *out)) {
                if out.slice.buffer() == other.slice.buffer() && ranges_overlap(out, other) {
                    return Err(BatchNormError::Overlap {
                        output: out.name,
                        other: other.name,
                    });
                }
            }
        }
        Ok(())
    }
}

pub(super) const EPILOGUE_WHY: &str = "the forward's residual, and the backward's y and dresidual, are used exactly with the fused epilogue that needs them (config.epilogue)";

/// The `Params::flags` bits of an epilogue.
pub(super) fn epilogue_flags(epilogue: Epilogue) -> u32 {
    match epilogue {
        Epilogue::None => 0,
        Epilogue::Relu => FLAG_RELU,
        Epilogue::AddRelu => FLAG_RELU | FLAG_RESIDUAL,
    }
}

pub(super) const AFFINE_WHY: &str =
    "gamma and beta (and their gradients) are used exactly when config.affine is true";
pub(super) const RUNNING_WHY: &str =
    "running statistics are used exactly when config.track_running_stats is true";

/// `value` when `needed`, an error naming `name` when it is missing or unexpected.
pub(super) fn presence<T>(
    name: &'static str,
    value: Option<T>,
    needed: bool,
    why: &'static str,
) -> Result<Option<T>> {
    match (value, needed) {
        (Some(v), true) => Ok(Some(v)),
        (None, false) => Ok(None),
        (None, true) => Err(BatchNormError::MissingBuffer { name, why }),
        (Some(_), false) => Err(BatchNormError::UnexpectedBuffer { name, why }),
    }
}

pub(super) fn check_limit(
    name: &'static str,
    bytes: u64,
    limit_name: &'static str,
    limit: u64,
) -> Result<()> {
    if bytes > limit {
        return Err(BatchNormError::ExceedsLimit {
            name,
            bytes,
            limit_name,
            limit,
        });
    }
    Ok(())
}

pub(super) fn ranges_overlap(a: &Bound<'_>, b: &Bound<'_>) -> bool {
    let (a0, b0) = (a.slice.offset(), b.slice.offset());
    a0 < b0 + b.slice.size() && b0 < a0 + a.slice.size()
}

impl<'a> Bound<'a> {
    pub(super) fn tensor(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::Tensor,
        }
    }

    pub(super) fn channel(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::PerChannel,
        }
    }

    pub(super) fn stats(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::Stats,
        }
    }

    pub(super) fn counter(name: &'static str, slice: wgpu::BufferSlice<'a>) -> Self {
        Self {
            name,
            slice,
            written: true,
            kind: Kind::Counter,
        }
    }

    pub(super) fn counter64(name: &'static str, slice: wgpu::BufferSlice<'a>) -> Self {
        Self {
            kind: Kind::Counter64,
            ..Self::counter(name, slice)
        }
    }
}
