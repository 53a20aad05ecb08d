//! The speaker encoder's front end, as Resemblyzer computes it with librosa
//! (`melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40)`): 25 ms
//! periodic Hann windows every 10 ms, centred (200 zeros each side), the power
//! spectrum, and 40 mel bands on the Slaney scale with Slaney normalisation from 0
//! to 8 kHz. No logarithm: the encoder takes mel power.

use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_MELS: usize = 40;
const BINS: usize = N_FFT / 2 + 1;

/// One band's weights: the first bin it covers and its weights from there.
#[derive(Debug, Clone)]
struct Band {
    first: usize,
    weights: Vec<f32>,
}

pub struct MelFrontEnd {
    window: Vec<f32>,
    bands: Vec<Band>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd").finish_non_exhaustive()
    }
}

/// Hz to mel on the Slaney scale: linear to 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_hz / f_sp + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// The 40 × 201 filterbank (librosa's `filters.mel(sr=16000, n_fft=400, n_mels=40)`),
/// each row a band over the FFT bins.
pub fn filterbank() -> Vec<Vec<f32>> {
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let mut points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    // As numpy's linspace does: the last point exactly the top.
    points[N_MELS + 1] = SAMPLE_RATE as f64 / 2.0;
    let bin_hz = SAMPLE_RATE as f64 / N_FFT as f64;
    (0..N_MELS)
        .map(|i| {
            let (a, b, c) = (points[i], points[i + 1], points[i + 2]);
            let norm = 2.0 / (c - a);
            (0..BINS)
                .map(|k| {
                    let f = k as f64 * bin_hz;
                    let w = ((f - a) / (b - a)).min((c - f) / (c - b)).max(0.0);
                    (w * norm) as f32
                })
                .collect()
        })
        .collect()
}

impl Default for MelFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl MelFrontEnd {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let bands = filterbank()
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|w| *w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|w| *w > 0.0).unwrap_or(first);
                Band {
                    first,
                    weights: row[first..=last].to_vec(),
                }
            })
            .collect();
        Self {
            window,
            bands,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// The mel power frames of 16 kHz samples: `1 + len / 160` frames of 40 bands,
    /// frame `t` centred on sample `160 t`.
    pub fn frames(&self, wav: &[f32]) -> Vec<[f32; N_MELS]> {
        let n = 1 + wav.len() / HOP;
        let pad = N_FFT / 2;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; BINS];
        let mut out = Vec::with_capacity(n);
        for t in 0..n {
            // Padded sample j is wav[j - pad], zero outside.
            let start = (t * HOP) as isize - pad as isize;
            for (i, x) in input.iter_mut().enumerate() {
                let j = start + i as isize;
                let s = if j >= 0 && (j as usize) < wav.len() {
                    wav[j as usize]
                } else {
                    0.0
                };
                *x = s * self.window[i];
            }
            // Sizes come from the plan itself: the transform cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                out.push([0.0; N_MELS]);
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            let mut frame = [0f32; N_MELS];
            for (m, band) in frame.iter_mut().zip(&self.bands) {
                *m = band
                    .weights
                    .iter()
                    .zip(&power[band.first..])
                    .map(|(w, p)| w * p)
                    .sum();
            }
            out.push(frame);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filterbank_is_librosas() {
        let fb = filterbank();
        assert_eq!((fb.len(), fb[0].len()), (40, 201));
        // librosa 0.11: band 0 covers bins 1..=3 with its peak 0.0124045; the
        // Slaney-normalised bands' sums, as librosa's matrix has them.
        let nonzero: Vec<usize> = (0..201).filter(|k| fb[0][*k] > 0.0).collect();
        assert_eq!(nonzero, [1, 2, 3]);
        let peak = fb[0].iter().copied().fold(0.0, f32::max);
        assert!((peak - 0.012_404_5).abs() < 1e-6, "{peak}");
        for (band, expected) in [
            (0, 0.024_809),
            (5, 0.025_734_5),
            (16, 0.024_184),
            (27, 0.024_953_1),
            (39, 0.024_978_8),
        ] {
            let sum: f32 = fb[band].iter().sum();
            assert!((sum - expected).abs() < 2e-6, "band {band}: {sum}");
        }
        let last: Vec<usize> = (0..201).filter(|k| fb[39][*k] > 0.0).collect();
        assert_eq!((last[0], last[last.len() - 1]), (172, 199));
    }

    #[test]
    fn a_tone_lands_in_its_band_and_frames_are_centred() {
        let fe = MelFrontEnd::new();
        // 1 s of a 1 kHz tone: 1 + 16000/160 frames.
        let wav: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let frames = fe.frames(&wav);
        assert_eq!(frames.len(), 101);
        let mid = &frames[50];
        let loudest = (0..N_MELS)
            .max_by(|a, b| mid[*a].total_cmp(&mid[*b]))
            .unwrap_or(0);
        // 1 kHz lies between band 13's centre (956 Hz) and band 14's (1031 Hz).
        assert!(loudest == 13 || loudest == 14, "{loudest}");
        // The first frame is centred on sample 0: half of it is padding.
        let total = |f: &[f32; N_MELS]| f.iter().sum::<f32>();
        assert!(total(&frames[0]) < total(mid));
        assert_eq!(fe.frames(&[]).len(), 1);
    }
}
