//! PyTorch checkpoints in safetensors files: the tensors of `model.state_dict()` as
//! `safetensors.torch.save_file` writes them, read into and written from layer states.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors, View};

use super::{BatchNormLayer, LayerState};
use crate::config::BatchNormConfig;
use crate::error::{BatchNormError, Result};

/// One tensor of a checkpoint: element type, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The tensors of a safetensors file by name, e.g. a whole model's `state_dict()`, from
/// which layers load their state under a prefix (`layer1.0.bn1.`) and into which they save
/// it. Keys follow PyTorch: `{prefix}weight`, `{prefix}bias`, `{prefix}running_mean`,
/// `{prefix}running_var` (`[C]` tensors: f32, or f16, bf16 and f64 converted to f32 on
/// loading, rounding to nearest) and `{prefix}num_batches_tracked` (a scalar int64; int32,
/// uint32 and uint64 are taken too). Saving writes f32 and int64, as PyTorch has them.
///
/// ```
/// use wgpu_batchnorm::{BatchNormConfig, BatchNormLayer, Checkpoint, HeadlessGpu};
///
/// let gpu = HeadlessGpu::open()?;
/// // Written in Python by `safetensors.torch.save_file(model.state_dict(), path)`
/// // (this one by the crate's tests/data/pytorch/make_checkpoint.py).
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pytorch/checkpoint.safetensors");
/// let checkpoint = Checkpoint::read(path)?;
/// let mut bn = BatchNormLayer::batch_norm_2d(&gpu.device, BatchNormConfig::new(5), "features.1")?;
/// bn.load_checkpoint(&gpu.queue, &checkpoint, "features.1.")?;
/// bn.eval();
/// assert_eq!(bn.state(&gpu.queue)?.num_batches_tracked, Some(7));
/// # Ok::<(), wgpu_batchnorm::BatchNormError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    tensors: BTreeMap<String, Tensor>,
}

impl Checkpoint {
    /// An empty checkpoint, to save layers into.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tensors of a safetensors file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| BatchNormError::Checkpoint(e.to_string()))?;
        let tensors = file
            .iter()
            .map(|(name, view)| {
                let tensor = Tensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                };
                (name.to_string(), tensor)
            })
            .collect();
        Ok(Self { tensors })
    }

    /// Reads a safetensors file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| BatchNormError::Checkpoint(format!("reading {}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// The safetensors bytes of every tensor, in key order.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        safetensors::serialize(&self.tensors, None)
            .map_err(|e| BatchNormError::Checkpoint(e.to_string()))
    }

    /// Writes the checkpoint as a safetensors file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?)
            .map_err(|e| BatchNormError::Checkpoint(format!("writing {}: {e}", path.display())))
    }

    /// The tensor names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The state of a layer with `config` under `prefix`: the tensors the configuration has
    /// (weight and bias when affine; running statistics and `num_batches_tracked` when
    /// tracked), checked for presence, shape and dtype; other keys are ignored.
    pub fn layer_state(&self, prefix: &str, config: &BatchNormConfig) -> Result<LayerState> {
        let c = config.num_features;
        let floats = |name: &str, wanted: bool| {
            wanted
                .then(|| self.channel_floats(&format!("{prefix}{name}"), c))
                .transpose()
        };
        let tracked = config.track_running_stats;
        Ok(LayerState {
            weight: floats("weight", config.affine)?,
            bias: floats("bias", config.affine)?,
            running_mean: floats("running_mean", tracked)?,
            running_var: floats("running_var", tracked)?,
            num_batches_tracked: tracked
                .then(|| self.count(&format!("{prefix}num_batches_tracked")))
                .transpose()?,
        })
    }

    /// Inserts `state`'s tensors under `prefix` (f32 `[C]` tensors and a scalar int64
    /// `num_batches_tracked`, as PyTorch's), replacing tensors of the same names.
    pub fn insert_layer_state(&mut self, prefix: &str, state: &LayerState) {
        for (name, values) in state.channel_tensors() {
            if let Some(v) = values {
                let tensor = Tensor {
                    dtype: Dtype::F32,
                    shape: vec![v.len()],
                    data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                };
                self.tensors.insert(format!("{prefix}{name}"), tensor);
            }
        }
        if let Some(n) = state.num_batches_tracked {
            // PyTorch's int64; counts past i64::MAX do not occur (2^63 batches).
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            let tensor = Tensor {
                dtype: Dtype::I64,
                shape: vec![],
                data: n.to_le_bytes().to_vec(),
            };
            self.tensors
                .insert(format!("{prefix}num_batches_tracked"), tensor);
        }
    }

    fn get(&self, key: &str) -> Result<&Tensor> {
        self.tensors
            .get(key)
            .ok_or_else(|| BatchNormError::CheckpointMissingKey {
                key: key.to_string(),
            })
    }

    /// A `[c]` float tensor as f32.
    fn channel_floats(&self, key: &str, c: usize) -> Result<Vec<f32>> {
        let t = self.get(key)?;
        if t.shape != [c] {
            return Err(shape_error(key, vec![c], &t.shape));
        }
        let d = &t.data;
        Ok(match t.dtype {
            Dtype::F32 => words::<4>(d).map(f32::from_le_bytes).collect(),
            Dtype::F16 => words::<2>(d)
                .map(|b| f16::from_le_bytes(b).to_f32())
                .collect(),
            Dtype::BF16 => words::<2>(d)
                .map(|b| bf16::from_le_bytes(b).to_f32())
                .collect(),
            Dtype::F64 => words::<8>(d)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            other => return Err(dtype_error(key, other, "F32, F16, BF16 or F64")),
        })
    }

    /// A scalar (or one-element) non-negative integer.
    fn count(&self, key: &str) -> Result<u64> {
        let t = self.get(key)?;
        if !(t.shape.is_empty() || t.shape == [1]) {
            return Err(shape_error(key, vec![], &t.shape));
        }
        let d = &t.data;
        let value: i128 = match t.dtype {
            Dtype::I64 => i64::from_le_bytes(first(d)).into(),
            Dtype::I32 => i32::from_le_bytes(first(d)).into(),
            Dtype::U64 => u64::from_le_bytes(first(d)).into(),
            Dtype::U32 => u32::from_le_bytes(first(d)).into(),
            other => return Err(dtype_error(key, other, "I64, I32, U64 or U32")),
        };
        u64::try_from(value).map_err(|_| BatchNormError::CheckpointValue {
            key: key.to_string(),
            reason: format!("a count of batches cannot be {value}"),
        })
    }
}

/// The little-endian words of `data` (whose length safetensors has checked against the
/// shape and dtype).
fn words<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|w| w.try_into().expect("N bytes"))
}

fn first<const N: usize>(data: &[u8]) -> [u8; N] {
    words::<N>(data).next().unwrap_or([0; N])
}

fn shape_error(key: &str, expected: Vec<usize>, got: &[usize]) -> BatchNormError {
    BatchNormError::CheckpointShape {
        key: key.to_string(),
        expected,
        got: got.to_vec(),
    }
}

fn dtype_error(key: &str, dtype: Dtype, expected: &'static str) -> BatchNormError {
    BatchNormError::CheckpointDtype {
        key: key.to_string(),
        dtype: format!("{dtype:?}"),
        expected,
    }
}

impl BatchNormLayer {
    /// Loads the layer's state from `checkpoint` under `prefix` (e.g. `"layer1.0.bn1."`;
    /// see [`Checkpoint`]) through `queue.write_buffer`; on an error nothing is written.
    pub fn load_checkpoint(
        &mut self,
        queue: &wgpu::Queue,
        checkpoint: &Checkpoint,
        prefix: &str,
    ) -> Result<()> {
        let state = checkpoint.layer_state(prefix, self.config())?;
        self.load_state(queue, &state)
    }

    /// Reads the layer's state back (blocks, see [`BatchNormLayer::state`]) and inserts it
    /// into `checkpoint` under `prefix`.
    pub fn save_checkpoint(
        &self,
        queue: &wgpu::Queue,
        checkpoint: &mut Checkpoint,
        prefix: &str,
    ) -> Result<()> {
        checkpoint.insert_layer_state(prefix, &self.state(queue)?);
        Ok(())
    }
}
