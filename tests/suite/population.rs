//! Population statistics (`PopulationStats`, PreciseBN): batches of different sizes and
//! layouts, an empty one among them, merged on the GPU, equal the exact statistics of the
//! concatenated data; applied, they become the layer's running statistics and its eval
//! output is the reference's with them.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormError, BatchNormLayer, ChannelStats, Mode, PopulationStats,
    TensorShape, VarianceConvention, reference,
};

#[test]
fn population_statistics_equal_those_of_the_concatenated_data() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let mut rng = rng();
    let c = 5;
    for convention in [VarianceConvention::Unbiased, VarianceConvention::Biased] {
        let config = BatchNormConfig::new(c).running_var_convention(convention);
        let mut layer = BatchNormLayer::new(device, config, "population").unwrap();
        let mut population = PopulationStats::new(&layer).unwrap();
        let shapes = [
            TensorShape::channels_first(&[3, c, 4, 4]).unwrap(),
            TensorShape::channels_first(&[7, c, 9, 11]).unwrap(),
            TensorShape::channels_first(&[0, c, 4, 4]).unwrap(),
            TensorShape::channels_last(&[2, 6, 6, c]).unwrap(),
            TensorShape::channels_first(&[1, c, 3]).unwrap(),
        ];
        let mut encoder = device.create_command_encoder(&Default::default());
        let mut want: Option<ChannelStats> = None;
        let mut inputs = Vec::new();
        for (i, shape) in shapes.iter().enumerate() {
            let x = normal(&mut rng, shape.numel(), 2.0 + i as f64, 3.0);
            let buffer = upload_f32(device, &x);
            population
                .add(&layer, &mut encoder, shape, buffer.slice(..))
                .unwrap();
            let exact = ChannelStats::of(shape, &x);
            want = Some(match want {
                Some(w) => w.merge(&exact).unwrap(),
                None => exact,
            });
            inputs.push(buffer);
        }
        queue.submit([encoder.finish()]);
        let want = want.unwrap();
        let case = format!("{convention:?}");
        let got = population.apply(&mut layer, queue).unwrap();
        assert_eq!(got.count, want.count, "{case}");
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(&case, "mean", &f32s(&got.mean), &want.mean, TOL);
        assert_close(&case, "M2", &f32s(&got.m2), &want.m2, TOL);
        let want_var = match convention {
            VarianceConvention::Unbiased => want.unbiased_variance(),
            VarianceConvention::Biased => want.variance(),
        };
        let state = layer.state(queue).unwrap();
        assert_close(
            &case,
            "running_mean",
            state.running_mean.as_ref().unwrap(),
            &want.mean,
            TOL,
        );
        assert_close(
            &case,
            "running_var",
            state.running_var.as_ref().unwrap(),
            &want_var,
            TOL,
        );
        assert_eq!(
            state.num_batches_tracked,
            Some(0),
            "{case}: apply counts no batch"
        );

        // The layer in eval mode normalizes with them.
        layer.eval();
        let shape = TensorShape::channels_first(&[4, c, 5]).unwrap();
        let x = normal(&mut rng, shape.numel(), 3.0, 3.0);
        let y = layer_forward(device, queue, &mut layer, &shape, &x);
        let mut running = layer_running(&state);
        let affine = Some((&[1.0; 5][..], &[0.0; 5][..]));
        let want_y =
            reference::forward(&config, Mode::Eval, &shape, &x, affine, Some(&mut running));
        assert_close(&case, "eval y", &y, &want_y.y, TOL);
    }
}

#[test]
fn population_statistics_need_values_and_running_statistics() {
    let gpu = gpu();
    let (device, queue) = (&gpu.device, &gpu.queue);
    let mut layer = BatchNormLayer::new(device, BatchNormConfig::new(3), "few").unwrap();
    let before = layer.state(queue).unwrap();
    let population = PopulationStats::new(&layer).unwrap();
    let e = population.apply(&mut layer, queue).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::InvalidConfig(m) if m.contains("channel 0 hold 0 values")),
        "{e}"
    );
    assert_eq!(
        layer.state(queue).unwrap(),
        before,
        "a refused apply writes nothing"
    );
    let untracked = BatchNormConfig::new(3).track_running_stats(false);
    let mut layer = BatchNormLayer::new(device, untracked, "untracked").unwrap();
    let population = PopulationStats::new(&layer).unwrap();
    let e = population.apply(&mut layer, queue).unwrap_err();
    assert!(
        matches!(&e, BatchNormError::InvalidConfig(m) if m.contains("track_running_stats")),
        "{e}"
    );
}
