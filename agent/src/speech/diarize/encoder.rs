//! Resemblyzer's speaker encoder: its weights read from the `pretrained.pt` its
//! wheel ships, and its network (three LSTM layers of 256 units over 160 mel frames,
//! the last layer's final state through a linear layer, ReLU and L2 normalisation).
//!
//! `pretrained.pt` is a legacy (pre-zip) PyTorch pickle. Rather than running a
//! pickle machine, the file is identified by its SHA-256 and the tensors are read
//! where that file keeps them (each storage is preceded by its element count, which
//! is checked too): 1,423,618 little-endian f32 in three storages — the LSTM's
//! parameters in cuDNN's one flat buffer, the linear layer's weight and bias.
//! docs/ARCHITECTURE.md ("Who spoke") has the layout and how it was read.

use super::mel::{MelFrontEnd, HOP, N_MELS};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const EMBEDDING: usize = 256;
const HIDDEN: usize = 256;
const GATES: usize = 4 * HIDDEN;
/// Frames in a partial: 1.6 s.
pub const PARTIAL_FRAMES: usize = 160;
/// The SHA-256 of `resemblyzer/pretrained.pt` in resemblyzer 0.1.4's wheel.
pub const MODEL_SHA256: &str = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e";
pub const MODEL_BYTES: usize = 17_090_379;
/// Resemblyzer's loudness target: quieter speech is raised to it (never lowered).
const TARGET_DBFS: f32 = -30.0;

/// Where each storage's data starts in the file, and how many f32 it holds.
const LSTM_STORAGE: (usize, usize) = (269_883, 1_357_824);
const LINEAR_WEIGHT: (usize, usize) = (7_731, 65_536);
const LINEAR_BIAS: (usize, usize) = (6_699, 256);
/// Element offsets in the LSTM storage: per layer, W_ih, W_hh, b_ih, b_hh (PyTorch's
/// gate order i, f, g, o in the rows).
const LSTM_OFFSETS: [(usize, usize, usize, usize); 3] = [
    (0, 40_960, 1_351_680, 1_352_704),
    (303_104, 565_248, 1_353_728, 1_354_752),
    (827_392, 1_089_536, 1_355_776, 1_356_800),
];

/// A voice's 256 numbers, of unit length.
pub type Embedding = [f32; EMBEDDING];

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("cannot read the speaker encoder {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not Resemblyzer 0.1.4's pretrained.pt (SHA-256 {found}, expected {MODEL_SHA256}): run scripts/setup.sh")]
    NotTheModel { path: PathBuf, found: String },
    #[error("{path}: the storage at byte {at} holds {found} values, expected {expected}")]
    Layout {
        path: PathBuf,
        at: usize,
        found: i64,
        expected: usize,
    },
}

#[derive(Debug)]
struct Layer {
    input: usize,
    /// GATES × input, row-major.
    w_ih: Vec<f32>,
    /// GATES × HIDDEN, row-major.
    w_hh: Vec<f32>,
    /// b_ih + b_hh.
    bias: Vec<f32>,
}

#[derive(Debug)]
pub struct Encoder {
    layers: Vec<Layer>,
    /// EMBEDDING × HIDDEN, row-major.
    linear_w: Vec<f32>,
    linear_b: Vec<f32>,
    mel: MelFrontEnd,
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `C[m×n] = beta·C + A[m×k]·B[k×n]`, each matrix given by a slice and its row and
/// column strides. `None` if a stride reaches past its slice (a bug, never input).
#[allow(clippy::too_many_arguments)]
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) -> Option<()> {
    use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
    let a = ArrayView2::from_shape((m, k).strides((rsa, csa)), a).ok()?;
    let b = ArrayView2::from_shape((k, n).strides((rsb, csb)), b).ok()?;
    let mut c = ArrayViewMut2::from_shape((m, n).strides((rsc, csc)), c).ok()?;
    ndarray::linalg::general_mat_mul(1.0, &a, &b, beta, &mut c);
    Some(())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Banker's rounding, as Python's `round` and numpy's do.
fn round_half_even(x: f32) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    r.max(0.0) as usize
}

/// Where the partials of `n_samples` start, in frames (Resemblyzer's
/// `compute_partial_slices`): every `round(100 / rate)` frames, the last dropped if
/// it covers less than `min_coverage` of its 1.6 s and is not the only one.
pub fn partial_starts(n_samples: usize, rate: f32, min_coverage: f32) -> Vec<usize> {
    let frames = (n_samples + 1).div_ceil(HOP);
    let step = round_half_even(100.0 / rate).max(1);
    let steps = (frames + step + 1).saturating_sub(PARTIAL_FRAMES).max(1);
    let mut starts: Vec<usize> = (0..steps).step_by(step).collect();
    if let (true, Some(&last)) = (starts.len() > 1, starts.last()) {
        let covered = (n_samples as f32 - (last * HOP) as f32) / (PARTIAL_FRAMES * HOP) as f32;
        if covered < min_coverage {
            starts.pop();
        }
    }
    starts
}

/// The cosine similarity of two embeddings (both of unit length: their dot product).
pub fn cosine(a: &Embedding, b: &Embedding) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalised(v: &[f32]) -> Option<Embedding> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return None;
    }
    let mut e = [0f32; EMBEDDING];
    for (o, x) in e.iter_mut().zip(v) {
        *o = x / norm;
    }
    Some(e)
}

impl Encoder {
    /// Reads and checks `pretrained.pt`.
    pub fn load(path: &Path) -> Result<Self, EncoderError> {
        let bytes = std::fs::read(path).map_err(|source| EncoderError::Read {
            path: path.to_owned(),
            source,
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if found != MODEL_SHA256 || bytes.len() != MODEL_BYTES {
            return Err(EncoderError::NotTheModel {
                path: path.to_owned(),
                found,
            });
        }
        let storage = |(at, numel): (usize, usize)| -> Result<Vec<f32>, EncoderError> {
            let count = bytes
                .get(at - 8..at)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_le_bytes)
                .unwrap_or(-1);
            let data = bytes.get(at..at + 4 * numel);
            match data {
                Some(d) if count == numel as i64 => Ok(floats(d)),
                _ => Err(EncoderError::Layout {
                    path: path.to_owned(),
                    at,
                    found: count,
                    expected: numel,
                }),
            }
        };
        let lstm = storage(LSTM_STORAGE)?;
        let layers = LSTM_OFFSETS
            .iter()
            .enumerate()
            .map(|(l, &(ih, hh, b_ih, b_hh))| {
                let input = if l == 0 { N_MELS } else { HIDDEN };
                Layer {
                    input,
                    w_ih: lstm[ih..ih + GATES * input].to_vec(),
                    w_hh: lstm[hh..hh + GATES * HIDDEN].to_vec(),
                    bias: lstm[b_ih..b_ih + GATES]
                        .iter()
                        .zip(&lstm[b_hh..b_hh + GATES])
                        .map(|(a, b)| a + b)
                        .collect(),
                }
            })
            .collect();
        Ok(Self {
            layers,
            linear_w: storage(LINEAR_WEIGHT)?,
            linear_b: storage(LINEAR_BIAS)?,
            mel: MelFrontEnd::new(),
        })
    }

    /// The embeddings of the partials of `mel` starting at `starts` (each 160
    /// frames; all computed together, as matrix products).
    pub fn embed_partials(
        &self,
        mel: &[[f32; N_MELS]],
        starts: &[usize],
    ) -> Vec<Option<Embedding>> {
        self.forward(mel, starts)
            .unwrap_or_else(|| vec![None; starts.len()])
    }

    fn forward(&self, mel: &[[f32; N_MELS]], starts: &[usize]) -> Option<Vec<Option<Embedding>>> {
        let batch = starts
            .iter()
            .filter(|s| *s + PARTIAL_FRAMES <= mel.len())
            .count();
        if batch != starts.len() || starts.is_empty() {
            return Some(
                starts
                    .iter()
                    .map(|&s| {
                        (s + PARTIAL_FRAMES <= mel.len())
                            .then(|| self.embed_partials(mel, &[s]).pop().flatten())
                            .flatten()
                    })
                    .collect(),
            );
        }
        let t_n = PARTIAL_FRAMES;
        // The sequence entering the layer: batch × T × input.
        let mut x: Vec<f32> = Vec::with_capacity(batch * t_n * N_MELS);
        for &s in starts {
            for frame in &mel[s..s + t_n] {
                x.extend_from_slice(frame);
            }
        }
        let mut h = vec![0f32; batch * HIDDEN];
        for layer in &self.layers {
            // Every step's input projection at once: (batch·T × input)·W_ihᵀ.
            let mut z = vec![0f32; batch * t_n * GATES];
            gemm(
                (batch * t_n, layer.input, GATES),
                &x,
                (layer.input, 1),
                &layer.w_ih,
                (1, layer.input),
                0.0,
                &mut z,
                (GATES, 1),
            )?;
            h.iter_mut().for_each(|v| *v = 0.0);
            let mut c = vec![0f32; batch * HIDDEN];
            let mut out = vec![0f32; batch * t_n * HIDDEN];
            for t in 0..t_n {
                // z[b, t] += h[b]·W_hhᵀ, for every b at once.
                gemm(
                    (batch, HIDDEN, GATES),
                    &h,
                    (HIDDEN, 1),
                    &layer.w_hh,
                    (1, HIDDEN),
                    1.0,
                    &mut z[t * GATES..],
                    (t_n * GATES, 1),
                )?;
                for b in 0..batch {
                    let zt = &z[(b * t_n + t) * GATES..(b * t_n + t + 1) * GATES];
                    for j in 0..HIDDEN {
                        let i = sigmoid(zt[j] + layer.bias[j]);
                        let f = sigmoid(zt[HIDDEN + j] + layer.bias[HIDDEN + j]);
                        let g = (zt[2 * HIDDEN + j] + layer.bias[2 * HIDDEN + j]).tanh();
                        let o = sigmoid(zt[3 * HIDDEN + j] + layer.bias[3 * HIDDEN + j]);
                        let cj = f * c[b * HIDDEN + j] + i * g;
                        c[b * HIDDEN + j] = cj;
                        let hj = o * cj.tanh();
                        h[b * HIDDEN + j] = hj;
                        out[(b * t_n + t) * HIDDEN + j] = hj;
                    }
                }
            }
            x = out;
        }
        // The last layer's final state → linear → ReLU → unit length.
        let mut e = vec![0f32; batch * EMBEDDING];
        gemm(
            (batch, HIDDEN, EMBEDDING),
            &h,
            (HIDDEN, 1),
            &self.linear_w,
            (1, HIDDEN),
            0.0,
            &mut e,
            (EMBEDDING, 1),
        )?;
        let out = e
            .chunks_exact(EMBEDDING)
            .map(|row| {
                let v: Vec<f32> = row
                    .iter()
                    .zip(&self.linear_b)
                    .map(|(x, b)| (x + b).max(0.0))
                    .collect();
                normalised(&v)
            })
            .collect();
        Some(out)
    }

    /// The embedding of one stretch of 16 kHz speech (Resemblyzer's
    /// `embed_utterance`): raised to −30 dBFS if quieter, cut into partials `rate`
    /// a second, each embedded, the mean made unit length. `None` for silence.
    pub fn embed(&self, wav: &[f32], rate: f32) -> Option<Embedding> {
        if wav.is_empty() {
            return None;
        }
        let rms =
            (wav.iter().map(|s| (s * 32767.0).powi(2)).sum::<f32>() / wav.len() as f32).sqrt();
        if !rms.is_finite() || rms <= 0.0 {
            return None;
        }
        let gain_db = TARGET_DBFS - 20.0 * (rms / 32767.0).log10();
        let gain = if gain_db > 0.0 {
            10f32.powf(gain_db / 20.0)
        } else {
            1.0
        };
        let starts = partial_starts(wav.len(), rate, 0.75);
        let needed = (starts.last().copied().unwrap_or(0) + PARTIAL_FRAMES) * HOP;
        let mut padded: Vec<f32> = wav.iter().map(|s| s * gain).collect();
        if needed > padded.len() {
            padded.resize(needed, 0.0);
        }
        let mel = self.mel.frames(&padded);
        let parts: Vec<Embedding> = self
            .embed_partials(&mel, &starts)
            .into_iter()
            .flatten()
            .collect();
        if parts.is_empty() {
            return None;
        }
        let mut mean = vec![0f32; EMBEDDING];
        for p in &parts {
            for (m, x) in mean.iter_mut().zip(p) {
                *m += x;
            }
        }
        normalised(&mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_start_where_resemblyzer_starts_them() {
        assert_eq!(partial_starts(48_000, 1.3, 0.75), [0, 77, 154]);
        assert_eq!(partial_starts(32_000, 1.3, 0.75), [0, 77]);
        // Short speech: one partial, padded.
        assert_eq!(partial_starts(16_000, 2.0, 0.75), [0]);
        assert_eq!(partial_starts(0, 2.0, 0.75), [0]);
        assert_eq!(round_half_even(100.0 / 16.0), 6);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
    }

    #[test]
    fn gemm_multiplies_with_strides() {
        // [1 2; 3 4] · [5 6; 7 8]ᵀ (B given transposed by its strides).
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [1.0; 4];
        assert_eq!(
            gemm((2, 2, 2), &a, (2, 1), &b, (1, 2), 1.0, &mut c, (2, 1)),
            Some(())
        );
        assert_eq!(c, [18.0, 24.0, 40.0, 54.0]);
        // A stride past the slice is refused, not read.
        assert_eq!(
            gemm((2, 2, 2), &a, (3, 1), &b, (1, 2), 1.0, &mut c, (2, 1)),
            None
        );
    }

    #[test]
    fn another_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("pretrained.pt");
        std::fs::write(&p, b"not a model").expect("write");
        let e = Encoder::load(&p).expect_err("refused");
        assert!(e.to_string().contains("is not Resemblyzer"), "{e}");
        assert!(matches!(
            Encoder::load(&dir.path().join("missing.pt")),
            Err(EncoderError::Read { .. })
        ));
    }
}
