//! The blocking host layer (`forward_host`, `backward_host`: upload, record, submit, read
//! back) on top of the recording API, tested once: every option and mode on a channel-first
//! and a channels-last shape, ordinary data and data far from zero, against the reference.
//! Every other test drives the recording API (`common::check_on`).

use crate::common::*;
use wgpu_batchnorm::{BatchNormConfig, Layout, TensorShape};

#[test]
fn host_layer_matches_the_reference() {
    let gpu = gpu();
    let mut rng = rng();
    let far = Data {
        mean: 1e4,
        std: 1.0,
    };
    for (dims, layout) in [
        (&[4, 3, 9, 11][..], Layout::ChannelsFirst),
        (&[2, 5, 6, 7], Layout::ChannelsLast),
    ] {
        let shape = TensorShape::new(dims, layout).unwrap();
        for affine in [true, false] {
            for track in [true, false] {
                let config = BatchNormConfig::new(shape.channels())
                    .affine(affine)
                    .track_running_stats(track);
                for bn in layers(config) {
                    for mode in MODES {
                        check_host(&gpu.queue, &bn, mode, &shape, ORDINARY, TOL, &mut rng);
                        check_host(&gpu.queue, &bn, mode, &shape, far, TOL_FAR_MEAN, &mut rng);
                    }
                }
            }
        }
    }
}
