//! The red wine quality data (1,599 samples, 11 raw physico-chemical features, quality 3-8
//! as 6 classes; shipped inside `linfa-datasets`), the fixed train/test split, the seeded
//! batch order and initial weights. All drawn from one small generator defined here, so the
//! same seed gives the same run on every machine and the PyTorch script can replay it.

/// Samples in the training set (the rest, 319, are the test set).
pub const TRAIN: usize = 1280;
/// Raw features per sample.
pub const FEATURES: usize = 11;
/// Quality grades 3..=8, as classes 0..=5.
pub const CLASSES: usize = 6;
/// The lowest quality grade (class 0).
const LOWEST_GRADE: usize = 3;

/// SplitMix64: a tiny generator whose stream is fixed by its definition (unlike a library's
/// default generator, which may change between versions).
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// The data set in row-major f32, its labels, and the split (indices into the 1,599 rows).
pub struct WineData {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub train: Vec<u32>,
    pub test: Vec<u32>,
}

impl WineData {
    /// Loads the data and splits it with a permutation drawn from `seed`.
    pub fn load(seed: u64) -> Self {
        let dataset = linfa_datasets::winequality();
        let (records, targets) = (&dataset.records, &dataset.targets);
        assert_eq!(records.ncols(), FEATURES);
        let features = records.iter().map(|&v| v as f32).collect();
        let labels = targets
            .iter()
            .map(|&q| (q - LOWEST_GRADE) as u32)
            .collect::<Vec<_>>();
        assert!(labels.iter().all(|&c| (c as usize) < CLASSES));
        let order = SplitMix64::new(seed).permutation(records.nrows());
        Self {
            features,
            labels,
            train: order[..TRAIN].to_vec(),
            test: order[TRAIN..].to_vec(),
        }
    }

    /// The training indices in epoch `epoch`'s batch order (a permutation per epoch, from
    /// the seed and the epoch alone, so that every configuration sees the same batches).
    pub fn epoch_order(&self, seed: u64, epoch: usize) -> Vec<u32> {
        let mut rng = SplitMix64::new(seed ^ (0xE90C_0000 + epoch as u64));
        rng.permutation(self.train.len())
            .into_iter()
            .map(|i| self.train[i as usize])
            .collect()
    }
}

/// The initial weight and bias of a `Linear(inputs, outputs)`, as PyTorch's default
/// initialisation draws them: uniform in +-1/sqrt(inputs) (kaiming_uniform with a = sqrt(5)).
pub fn linear_init(rng: &mut SplitMix64, inputs: usize, outputs: usize) -> (Vec<f32>, Vec<f32>) {
    let bound = 1.0 / (inputs as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (2.0 * rng.next_f32() - 1.0) * bound)
            .collect()
    };
    let w = draw(inputs * outputs);
    let b = draw(outputs);
    (w, b)
}
