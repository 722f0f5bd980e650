//! The benchmark's shapes: the built-in suites and `--case DIMS:LAYOUT`.

use wgpu_batchnorm::TensorShape;

/// One shape of the suite: logical (N, C, *spatial) and its memory layout.
#[derive(Clone)]
pub(crate) struct Case {
    /// Logical (N, C, *spatial).
    pub(crate) dims: Vec<usize>,
    pub(crate) layout: &'static str,
}

/// A case of the built-in suites.
pub(crate) struct Known {
    dims: &'static [usize],
    layout: &'static str,
}

impl Known {
    pub(crate) fn case(&self) -> Case {
        Case {
            dims: self.dims.to_vec(),
            layout: self.layout,
        }
    }
}

/// `NxCxHxW:LAYOUT` (LAYOUT one of NCHW, NHWC, NC; any rank from 2 to 5).
pub(crate) fn parse_case(s: &str) -> Result<Case, String> {
    let (dims, layout) = s.split_once(':').ok_or(format!(
        "--case {s:?}: expected DIMS:LAYOUT, e.g. 8x64x56x56:NHWC"
    ))?;
    let dims = dims
        .split('x')
        .map(|d| d.parse::<usize>().map_err(|e| format!("--case {s:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let layout = match layout {
        "NCHW" => "NCHW",
        "NHWC" => "NHWC",
        "NC" => "NC",
        other => {
            return Err(format!(
                "--case {s:?}: layout {other:?} is not NCHW, NHWC or NC"
            ));
        }
    };
    if !(2..=5).contains(&dims.len()) {
        return Err(format!("--case {s:?}: rank {} is not 2 to 5", dims.len()));
    }
    Ok(Case { dims, layout })
}

/// The suite: the shapes PyTorch was measured on, in both layouts.
pub(crate) const FULL: &[Known] = &[
    Known {
        dims: &[32, 64, 112, 112],
        layout: "NCHW",
    },
    Known {
        dims: &[32, 64, 112, 112],
        layout: "NHWC",
    },
    Known {
        dims: &[64, 256, 56, 56],
        layout: "NCHW",
    },
    Known {
        dims: &[64, 256, 56, 56],
        layout: "NHWC",
    },
    Known {
        dims: &[256, 2048, 7, 7],
        layout: "NCHW",
    },
    Known {
        dims: &[256, 2048, 7, 7],
        layout: "NHWC",
    },
    Known {
        dims: &[16, 32, 256, 256],
        layout: "NCHW",
    },
    Known {
        dims: &[16, 32, 256, 256],
        layout: "NHWC",
    },
    Known {
        dims: &[4096, 4096],
        layout: "NC",
    },
    // Many channels with few values each (the hardening issue's cliff), next to the same
    // data laid out as (M, C).
    Known {
        dims: &[1, 1000000, 2],
        layout: "NCHW",
    },
    Known {
        dims: &[2, 1000000],
        layout: "NC",
    },
    Known {
        dims: &[1, 262144, 64],
        layout: "NCHW",
    },
    Known {
        dims: &[64, 262144],
        layout: "NC",
    },
];

/// Small shapes of the same kinds, for software adapters.
pub(crate) const QUICK: &[Known] = &[
    Known {
        dims: &[8, 16, 32, 32],
        layout: "NCHW",
    },
    Known {
        dims: &[8, 16, 32, 32],
        layout: "NHWC",
    },
    Known {
        dims: &[16, 128, 7, 7],
        layout: "NCHW",
    },
    Known {
        dims: &[16, 128, 7, 7],
        layout: "NHWC",
    },
    Known {
        dims: &[512, 256],
        layout: "NC",
    },
    Known {
        dims: &[1, 20000, 2],
        layout: "NCHW",
    },
    Known {
        dims: &[2, 20000],
        layout: "NC",
    },
];

/// The case as a `TensorShape` (NHWC given as logical NCHW dims).
pub(crate) fn shape_of(case: &Case) -> Result<TensorShape, wgpu_batchnorm::BatchNormError> {
    match case.layout {
        "NHWC" => {
            let d = &case.dims;
            let mut nhwc = vec![d[0]];
            nhwc.extend_from_slice(&d[2..]);
            nhwc.push(d[1]);
            TensorShape::channels_last(&nhwc)
        }
        _ => TensorShape::channels_first(&case.dims),
    }
}
