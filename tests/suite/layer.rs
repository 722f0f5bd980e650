//! The owning layer (`BatchNormLayer`): several training steps and an eval step against the
//! reference with its own parameters, state and accumulated gradients; its modes, rank
//! checks, gradient modes, state round trip and errors.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormError, BatchNormLayer, Epilogue, GradMode, LayerState, Mode,
    TensorShape, reference,
};

/// One layer's tensors of a step, uploaded; outputs poisoned.
struct Io {
    x: wgpu::Buffer,
    z: wgpu::Buffer,
    y: wgpu::Buffer,
    dy: wgpu::Buffer,
    dx: wgpu::Buffer,
    dz: wgpu::Buffer,
}

/// dgamma, dbeta and their condition scales, summed over the backwards so far.
type GradSums = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Three training steps (gradients accumulated over all three after one `zero_grad`, or
/// overwritten), then an eval forward and backward, each against the reference fed the
/// same parameters and running statistics; state read back at the end.
fn steps_match_the_reference(shape: &TensorShape, epilogue: Epilogue, grad_mode: GradMode) {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let mut rng = rng();
    let c = shape.channels();
    let config = BatchNormConfig::new(c).epilogue(epilogue);
    let mut layer = BatchNormLayer::new(device, config, "test.bn")
        .unwrap()
        .with_grad_mode(grad_mode);
    let (gamma, beta) = (normal(&mut rng, c, 1.0, 0.3), normal(&mut rng, c, 0.0, 0.5));
    let mut state = layer.state(queue).unwrap();
    state.weight = Some(gamma.clone());
    state.bias = Some(beta.clone());
    layer.load_state(queue, &state).unwrap();
    let mut running = reference::RunningStats::new(c);
    let mut sums: Option<GradSums> = None;
    let add = epilogue == Epilogue::AddRelu;
    for step in 0..4 {
        let mode = if step < 3 { Mode::Train } else { Mode::Eval };
        if mode == Mode::Eval {
            layer.eval();
        }
        assert_eq!(layer.mode(), mode);
        let case = format!("{shape:?} {epilogue:?} {grad_mode:?} step {step} {mode:?}");
        let n = shape.numel();
        let x = normal(&mut rng, n, 1.5, 2.0);
        let z = normal(&mut rng, n, 0.0, 1.0);
        let dy = normal(&mut rng, n, 0.2, 1.0);
        let nan = vec![f32::NAN; n];
        let io = Io {
            x: upload_f32(device, &x),
            z: upload_f32(device, &z),
            y: upload_f32(device, &nan),
            dy: upload_f32(device, &dy),
            dx: upload_f32(device, &nan),
            dz: upload_f32(device, &nan),
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        if step == 0 {
            layer.zero_grad(&mut encoder);
        }
        let (xs, ys) = (io.x.slice(..), io.y.slice(..));
        if add {
            layer.forward_add_relu(&mut encoder, shape, xs, io.z.slice(..), ys)
        } else {
            layer.forward(&mut encoder, shape, xs, ys)
        }
        .unwrap();
        let (dys, dxs) = (io.dy.slice(..), io.dx.slice(..));
        if add {
            layer.backward_add_relu(&mut encoder, xs, ys, dys, dxs, io.dz.slice(..))
        } else {
            layer.backward(&mut encoder, xs, ys, dys, dxs)
        }
        .unwrap();
        queue.submit([encoder.finish()]);

        let before = running.clone();
        let affine = Some((gamma.as_slice(), beta.as_slice()));
        let mut want = reference::forward(&config, mode, shape, &x, affine, Some(&mut running));
        reference::apply_epilogue(&mut want.y, add.then_some(z.as_slice()), epilogue);
        let y = read_f32(device, queue, &io.y);
        assert_close(&case, "y", &y, &want.y, TOL);
        let (sm, si) = layer.saved();
        let saved = (read_f32(device, queue, sm), read_f32(device, queue, si));
        let batch = mode == Mode::Train;
        let through = reference::through_epilogue(&dy, &y, epilogue);
        let saved_arg = batch.then_some((saved.0.as_slice(), saved.1.as_slice()));
        let mut back = reference::backward(
            &config,
            mode,
            shape,
            &x,
            &through,
            Some(&gamma),
            saved_arg,
            Some(&before),
        );
        let (dg, db) = back.dgamma_dbeta.clone().unwrap();
        let (ag, ab) = back.dgamma_dbeta_abs.clone().unwrap();
        let total = match (grad_mode, sums.take()) {
            (GradMode::Accumulate, Some((g, b, sg, sb))) => {
                let plus = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect();
                (plus(&g, &dg), plus(&b, &db), plus(&sg, &ag), plus(&sb, &ab))
            }
            _ => (dg, db, ag, ab),
        };
        back.dgamma_dbeta = Some((total.0.clone(), total.1.clone()));
        back.dgamma_dbeta_abs = Some((total.2.clone(), total.3.clone()));
        sums = Some(total);
        let (gw, gb) = layer.grads().unwrap();
        let grads = (read_f32(device, queue, gw), read_f32(device, queue, gb));
        let dx = read_f32(device, queue, &io.dx);
        assert_gradients(&case, &dx, Some((&grads.0, &grads.1)), &back, TOL);
        if add {
            let dz = read_f32(device, queue, &io.dz);
            let want_dz: Vec<f64> = through.iter().map(|&v| f64::from(v)).collect();
            assert_close(&case, "dresidual", &dz, &want_dz, TOL);
        }
        let got = layer.state(queue).unwrap();
        assert_eq!(got.num_batches_tracked, Some(running.num_batches_tracked));
        assert_close(
            &case,
            "running_mean",
            got.running_mean.as_ref().unwrap(),
            &running.mean,
            TOL,
        );
        assert_close(
            &case,
            "running_var",
            got.running_var.as_ref().unwrap(),
            &running.var,
            TOL,
        );
        assert_eq!(
            (got.weight, got.bias),
            (Some(gamma.clone()), Some(beta.clone()))
        );
    }
}

#[test]
fn training_and_eval_steps_accumulate_gradients_as_pytorch() {
    for (dims, epilogue) in [
        (&[6, 5, 7, 3][..], Epilogue::None),
        (&[64, 24][..], Epilogue::Relu),
        (&[4, 8, 9, 10][..], Epilogue::AddRelu),
    ] {
        let shape = TensorShape::channels_first(dims).unwrap();
        steps_match_the_reference(&shape, epilogue, GradMode::Accumulate);
    }
}

#[test]
fn overwriting_gradients_keeps_only_the_last_backward() {
    let shape = TensorShape::channels_last(&[5, 6, 7, 9]).unwrap();
    steps_match_the_reference(&shape, Epilogue::None, GradMode::Overwrite);
}

/// BatchNorm1d/2d/3d accept the ranks PyTorch's classes do; the others are refused with
/// a typed error and nothing recorded.
#[test]
fn layer_kinds_check_the_input_rank() {
    let gpu = gpu();
    let config = BatchNormConfig::new(3);
    type Make = fn(&wgpu::Device, BatchNormConfig, &str) -> wgpu_batchnorm::Result<BatchNormLayer>;
    let kinds: [(Make, &[usize]); 3] = [
        (BatchNormLayer::batch_norm_1d, &[2, 3]),
        (BatchNormLayer::batch_norm_2d, &[4]),
        (BatchNormLayer::batch_norm_3d, &[5]),
    ];
    for (make, ranks) in kinds {
        let mut layer = make(&gpu.device, config, "rank").unwrap();
        for rank in 2..=5usize {
            let mut dims = vec![2; rank];
            dims[1] = 3;
            let shape = TensorShape::channels_first(&dims).unwrap();
            let x = upload_f32(&gpu.device, &vec![1.0; shape.numel()]);
            let y = upload_f32(&gpu.device, &vec![f32::NAN; shape.numel()]);
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            let result = layer.forward(&mut encoder, &shape, x.slice(..), y.slice(..));
            if ranks.contains(&rank) {
                result.unwrap();
            } else {
                let e = result.unwrap_err();
                assert!(matches!(e, BatchNormError::LayerRank { .. }), "{e}");
                assert!(e.to_string().contains("BatchNorm"), "{e}");
            }
        }
    }
}

#[test]
fn backward_needs_a_forward_first() {
    let gpu = gpu();
    let mut layer = BatchNormLayer::new(&gpu.device, BatchNormConfig::new(2), "fresh").unwrap();
    let b = upload_f32(&gpu.device, &[0.0; 8]);
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let s = b.slice(..);
    let e = layer.backward(&mut encoder, s, s, s, s).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::NoForward { label } if label == "fresh"),
        "{e}"
    );
}

/// The layer's label names it; layers of one device share their kernels; a fresh layer has
/// PyTorch's initial state, and `load_state` checks what it is given.
#[test]
fn labels_sharing_initial_state_and_state_checks() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let a = BatchNormLayer::batch_norm_2d(device, BatchNormConfig::new(4), "layer1.0.bn1").unwrap();
    let mut b =
        BatchNormLayer::batch_norm_2d(device, BatchNormConfig::new(8), "layer1.0.bn2").unwrap();
    assert_eq!(a.label(), "layer1.0.bn1");
    assert_eq!(a.batch_norm().label(), "layer1.0.bn1");
    assert!(a.batch_norm().shares_kernels_with(b.batch_norm()));
    assert!(a.is_training());
    let state = a.state(queue).unwrap();
    let want = LayerState {
        weight: Some(vec![1.0; 4]),
        bias: Some(vec![0.0; 4]),
        running_mean: Some(vec![0.0; 4]),
        running_var: Some(vec![1.0; 4]),
        num_batches_tracked: Some(0),
    };
    assert_eq!(state, want);
    // Four channels' state into an eight-channel layer: the shape names the key.
    let e = b.load_state(queue, &state).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::CheckpointShape { key, expected, got } if key == "weight" && expected == &[8] && got == &[4]),
        "{e}"
    );
    let missing = LayerState {
        num_batches_tracked: None,
        ..want.clone()
    };
    let mut a = a;
    let e = a.load_state(queue, &missing).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::CheckpointMissingKey { key } if key == "num_batches_tracked"),
        "{e}"
    );
    let untracked = BatchNormConfig::new(4).track_running_stats(false);
    let mut c = BatchNormLayer::new(device, untracked, "untracked").unwrap();
    let e = c.load_state(queue, &want).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::CheckpointValue { key, .. } if key == "running_mean"),
        "{e}"
    );
    // A failed load wrote nothing.
    assert_eq!(b.state(queue).unwrap().weight, Some(vec![1.0; 8]));
}
