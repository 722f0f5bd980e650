//! PyTorch checkpoints (`Checkpoint`, safetensors): a file written by PyTorch
//! (`tests/data/pytorch/make_checkpoint.py`) loads into layers whose eval output matches
//! PyTorch's; save then load round-trips exactly; `num_batches_tracked` set near 2^32 by
//! the file passes it; each malformed tensor gets its typed error naming the key.

use crate::common::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormError, BatchNormLayer, Checkpoint, Mode, TensorShape, reference,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pytorch");

/// The layers of the file: prefix, configuration, input shape (channels-first).
fn layers() -> [(&'static str, BatchNormConfig, &'static [usize]); 5] {
    [
        ("features.1.", BatchNormConfig::new(5), &[6, 5, 3, 4]),
        (
            "features.3.",
            BatchNormConfig::new(4).affine(false),
            &[4, 4, 2, 3],
        ),
        ("block.bn.", BatchNormConfig::new(3), &[8, 3, 5]),
        ("head.bn.", BatchNormConfig::new(6), &[10, 6]),
        (
            "free.bn.",
            BatchNormConfig::new(2).track_running_stats(false),
            &[3, 2, 4, 4],
        ),
    ]
}

fn pytorch_file() -> Checkpoint {
    Checkpoint::read(format!("{DIR}/checkpoint.safetensors")).unwrap()
}

/// A float tensor of the inputs-and-outputs file, widened to f64.
fn io_tensor(file: &SafeTensors<'_>, key: &str) -> Vec<f64> {
    let t = file.tensor(key).unwrap();
    match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn pytorch_checkpoint_gives_pytorchs_eval_output() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let checkpoint = pytorch_file();
    let io_bytes = std::fs::read(format!("{DIR}/checkpoint_io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&io_bytes).unwrap();
    for (prefix, config, dims) in layers() {
        let shape = TensorShape::channels_first(dims).unwrap();
        let mut layer = BatchNormLayer::new(device, config, prefix).unwrap();
        layer.load_checkpoint(queue, &checkpoint, prefix).unwrap();
        layer.eval();
        let x: Vec<f32> = io_tensor(&io, &format!("{prefix}x"))
            .iter()
            .map(|&v| v as f32)
            .collect();
        let want = io_tensor(&io, &format!("{prefix}y"));
        let y = layer_forward(device, queue, &mut layer, &shape, &x);
        assert_close(prefix, "y against PyTorch", &y, &want, TOL);
        // The state read back is the file's, converted to f32.
        let state = layer.state(queue).unwrap();
        assert_eq!(
            state,
            checkpoint.layer_state(prefix, &config).unwrap(),
            "{prefix}"
        );
        let tracked = state.num_batches_tracked;
        let want_tracked = match prefix {
            "head.bn." => Some((1 << 32) - 1),
            "free.bn." => None,
            _ => Some(7),
        };
        assert_eq!(tracked, want_tracked, "{prefix}");
    }
}

/// Layers saved into a new checkpoint, written to bytes and read back, give the same
/// states bit for bit; the f32 layer's tensors are the PyTorch file's bytes exactly.
#[test]
fn save_then_load_round_trips_exactly() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let original = pytorch_file();
    let mut saved = Checkpoint::new();
    let mut states = Vec::new();
    for (prefix, config, _) in layers() {
        let mut layer = BatchNormLayer::new(device, config, prefix).unwrap();
        layer.load_checkpoint(queue, &original, prefix).unwrap();
        layer.save_checkpoint(queue, &mut saved, prefix).unwrap();
        states.push(layer.state(queue).unwrap());
    }
    let bytes = saved.to_bytes().unwrap();
    let reread = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(reread, saved);
    for ((prefix, config, _), state) in layers().into_iter().zip(&states) {
        let mut fresh = BatchNormLayer::new(device, config, prefix).unwrap();
        fresh.load_checkpoint(queue, &reread, prefix).unwrap();
        assert_eq!(&fresh.state(queue).unwrap(), state, "{prefix}");
    }
    let pytorch_bytes = std::fs::read(format!("{DIR}/checkpoint.safetensors")).unwrap();
    let pytorch = SafeTensors::deserialize(&pytorch_bytes).unwrap();
    let ours = SafeTensors::deserialize(&bytes).unwrap();
    for name in [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ] {
        let key = format!("features.1.{name}");
        let (a, b) = (pytorch.tensor(&key).unwrap(), ours.tensor(&key).unwrap());
        assert_eq!(
            (a.dtype(), a.shape(), a.data()),
            (b.dtype(), b.shape(), b.data()),
            "{key}"
        );
    }
    assert_eq!(saved.keys().count(), original.keys().count());
}

/// `num_batches_tracked` loaded as 2^32 - 1 passes 2^32 in training, and the cumulative
/// average (momentum `None`) stays equal to the reference's.
#[test]
fn num_batches_tracked_from_a_checkpoint_passes_2_pow_32() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let mut rng = rng();
    let checkpoint = pytorch_file();
    let shape = TensorShape::channels_first(&[10, 6]).unwrap();
    for momentum in [Some(0.1), None] {
        let config = BatchNormConfig::new(6).momentum(momentum);
        let mut layer = BatchNormLayer::batch_norm_1d(device, config, "head.bn").unwrap();
        layer
            .load_checkpoint(queue, &checkpoint, "head.bn.")
            .unwrap();
        let start = layer.state(queue).unwrap();
        let mut want = layer_running(&start);
        let affine = (start.weight.clone().unwrap(), start.bias.clone().unwrap());
        for step in 1..=2u64 {
            let case = format!("momentum {momentum:?} step {step}");
            let x = normal(&mut rng, shape.numel(), 1.0, 2.0);
            layer_forward(device, queue, &mut layer, &shape, &x);
            let ab = Some((affine.0.as_slice(), affine.1.as_slice()));
            reference::forward(&config, Mode::Train, &shape, &x, ab, Some(&mut want));
            let got = layer.state(queue).unwrap();
            assert_eq!(
                got.num_batches_tracked,
                Some((1 << 32) - 1 + step),
                "{case}"
            );
            assert_close(
                &case,
                "running_mean",
                got.running_mean.as_ref().unwrap(),
                &want.mean,
                TOL,
            );
            assert_close(
                &case,
                "running_var",
                got.running_var.as_ref().unwrap(),
                &want.var,
                TOL,
            );
        }
    }
}

/// A checkpoint of one tensor per (key, dtype, shape, bytes), written with safetensors.
fn file_with(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Checkpoint {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s, b)| (k.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    Checkpoint::from_bytes(&safetensors::serialize(views, None).unwrap()).unwrap()
}

#[test]
fn malformed_checkpoints_get_typed_errors_naming_the_key() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let pytorch = pytorch_file();
    let mut layer = BatchNormLayer::new(device, BatchNormConfig::new(5), "bn").unwrap();
    let fresh = layer.state(queue).unwrap();
    let e = layer.load_checkpoint(queue, &pytorch, "nope.").unwrap_err();
    assert!(
        matches!(&e, BatchNormError::CheckpointMissingKey { key } if key == "nope.weight"),
        "{e}"
    );
    // Six channels in the file, five in the layer.
    let e = layer
        .load_checkpoint(queue, &pytorch, "head.bn.")
        .unwrap_err();
    assert!(
        matches!(&e, BatchNormError::CheckpointShape { key, expected, got } if key == "head.bn.weight" && expected == &[5] && got == &[6]),
        "{e}"
    );
    let f32s = |v: f32| (0..5).flat_map(|_| v.to_le_bytes()).collect::<Vec<u8>>();
    let count = |n: i64| n.to_le_bytes().to_vec();
    let good = |weight: (Dtype, Vec<u8>), tracked: (Dtype, Vec<usize>, Vec<u8>)| {
        file_with(&[
            ("weight", weight.0, vec![5], weight.1),
            ("bias", Dtype::F32, vec![5], f32s(0.0)),
            ("running_mean", Dtype::F32, vec![5], f32s(0.0)),
            ("running_var", Dtype::F32, vec![5], f32s(1.0)),
            ("num_batches_tracked", tracked.0, tracked.1, tracked.2),
        ])
    };
    let ok_weight = (Dtype::F32, f32s(2.0));
    let ok_count = (Dtype::I64, vec![], count(3));
    let cases = [
        good((Dtype::I32, vec![0; 20]), ok_count.clone()),
        good(ok_weight.clone(), (Dtype::I64, vec![], count(-1))),
        good(
            ok_weight.clone(),
            (Dtype::I64, vec![2], [count(1), count(2)].concat()),
        ),
        good(
            ok_weight.clone(),
            (Dtype::F32, vec![], 1f32.to_le_bytes().to_vec()),
        ),
    ];
    let [dtype, negative, shape, float_count] =
        cases.map(|c| layer.load_checkpoint(queue, &c, "").unwrap_err());
    assert!(
        matches!(&dtype, BatchNormError::CheckpointDtype { key, .. } if key == "weight"),
        "{dtype}"
    );
    assert!(
        matches!(&negative, BatchNormError::CheckpointValue { key, .. } if key == "num_batches_tracked"),
        "{negative}"
    );
    assert!(
        matches!(&shape, BatchNormError::CheckpointShape { key, .. } if key == "num_batches_tracked"),
        "{shape}"
    );
    assert!(
        matches!(&float_count, BatchNormError::CheckpointDtype { key, .. } if key == "num_batches_tracked"),
        "{float_count}"
    );
    let e = Checkpoint::from_bytes(b"not a safetensors file").unwrap_err();
    assert!(matches!(e, BatchNormError::Checkpoint(_)), "{e}");
    let e = Checkpoint::read(format!("{DIR}/missing.safetensors")).unwrap_err();
    assert!(e.to_string().contains("missing.safetensors"), "{e}");
    // No failed load wrote anything; a good one does.
    assert_eq!(layer.state(queue).unwrap(), fresh);
    layer
        .load_checkpoint(queue, &good(ok_weight, ok_count), "")
        .unwrap();
    let state = layer.state(queue).unwrap();
    assert_eq!(
        (state.weight, state.num_batches_tracked),
        (Some(vec![2.0; 5]), Some(3))
    );
}
