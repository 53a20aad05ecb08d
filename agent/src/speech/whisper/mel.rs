//! Whisper's log-mel front end: 16 kHz audio → 80 (or 128) mel bands × 100 frames per
//! second, exactly as Whisper was trained on (and as faster-whisper computes it, which
//! the tests compare against):
//!
//! - a 400-sample (25 ms) periodic Hann window every 160 samples (10 ms), centred
//!   (the signal is reflected by 200 samples at both ends), after 160 samples of zero
//!   padding at the end; the last frame is dropped;
//! - the power spectrum of each frame (201 bins) through a Slaney-style mel filterbank
//!   (0–8 kHz, area-normalised triangles, as librosa's default);
//! - `log10(max(x, 1e-10))`, clamped to 8 below the maximum of the clip, then
//!   `(x + 4) / 4`.
//!
//! The clip's frames are then placed at the start of a 30 s (3000-frame) window whose
//! remaining frames are 0, which is how Whisper pads a segment shorter than 30 s.

use realfft::RealFftPlanner;
use std::sync::Arc;

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in Whisper's 30 s input window.
pub const N_FRAMES: usize = 3000;
/// Samples in Whisper's 30 s input window.
pub const N_SAMPLES: usize = N_FRAMES * HOP;

pub struct FrontEnd {
    n_mels: usize,
    /// `n_mels` rows of `N_FFT / 2 + 1` weights.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn realfft::RealToComplex<f32>>,
}

impl std::fmt::Debug for FrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEnd")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

/// Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above
/// (27 mels per factor 6.4).
const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_HZ_PER_MEL;

fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= SLANEY_MIN_LOG_HZ {
        SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_log_step()
    } else {
        hz / SLANEY_HZ_PER_MEL
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= SLANEY_MIN_LOG_MEL {
        SLANEY_MIN_LOG_HZ * (slaney_log_step() * (mel - SLANEY_MIN_LOG_MEL)).exp()
    } else {
        SLANEY_HZ_PER_MEL * mel
    }
}

/// The mel filterbank (`n_mels` × 201), as librosa's `filters.mel(sr=16000, n_fft=400,
/// n_mels, htk=False, norm="slaney")`.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * SAMPLE_RATE as f64 / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            out[m * bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

impl FrontEnd {
    pub fn new(n_mels: usize) -> Self {
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        Self {
            n_mels,
            filters: filterbank(n_mels),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The normalised log-mel spectrogram of `audio` (at most 30 s, samples in
    /// [-1, 1]): `n_mels` rows of `frames` values, row-major, and `frames`.
    pub fn log_mel(&self, audio: &[f32]) -> (Vec<f32>, usize) {
        let audio = &audio[..audio.len().min(N_SAMPLES)];
        // 160 samples of zeros at the end, then 200 reflected at both ends.
        let mut signal = Vec::with_capacity(audio.len() + HOP);
        signal.extend_from_slice(audio);
        signal.resize(audio.len() + HOP, 0.0);
        let pad = N_FFT / 2;
        let n = signal.len();
        let reflect = |i: isize| -> f32 {
            // Index into `signal` after reflecting at both edges (numpy's "reflect").
            let mut i = i;
            let last = n as isize - 1;
            while i < 0 || i > last {
                if i < 0 {
                    i = -i;
                }
                if i > last {
                    i = 2 * last - i;
                }
            }
            signal[i as usize]
        };
        // torch.stft(center=True) gives 1 + n / HOP frames; Whisper drops the last.
        let frames = n / HOP;
        let bins = N_FFT / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; bins];
        let mut mel = vec![0f32; self.n_mels * frames];
        for t in 0..frames {
            let start = (t * HOP) as isize - pad as isize;
            for (k, x) in input.iter_mut().enumerate() {
                *x = reflect(start + k as isize) * self.window[k];
            }
            // Sizes come from the plan itself, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * bins..(m + 1) * bins];
                let e: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * frames + t] = e.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::MIN, f32::max);
        for v in &mut mel {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        (mel, frames)
    }

    /// `log_mel` placed in a 30 s window (`n_mels` × [`N_FRAMES`], zeros after the
    /// clip), and the number of frames the clip filled.
    pub fn window_30s(&self, audio: &[f32]) -> (Vec<f32>, usize) {
        let (mel, frames) = self.log_mel(audio);
        let used = frames.min(N_FRAMES);
        let mut out = vec![0f32; self.n_mels * N_FRAMES];
        for m in 0..self.n_mels {
            out[m * N_FRAMES..m * N_FRAMES + used]
                .copy_from_slice(&mel[m * frames..m * frames + used]);
        }
        (out, used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_is_linear_below_1khz() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6, "{hz}");
        }
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn filterbank_triangles_cover_the_band_in_order() {
        let f = filterbank(80);
        let bins = N_FFT / 2 + 1;
        let mut last_peak = 0;
        for m in 0..80 {
            let row = &f[m * bins..(m + 1) * bins];
            assert!(row.iter().all(|w| *w >= 0.0));
            let peak = (0..bins)
                .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                .unwrap_or(0);
            assert!(
                peak >= last_peak,
                "filter {m} peaks before filter {}",
                m - 1
            );
            last_peak = peak;
        }
        // The highest filter reaches the top of the band; nothing is above 8 kHz.
        assert!(last_peak > 190);
    }

    #[test]
    fn a_tone_lights_the_band_it_is_in() {
        let fe = FrontEnd::new(80);
        let tone = |hz: f32| -> Vec<f32> {
            (0..SAMPLE_RATE)
                .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16000.0).sin())
                .collect()
        };
        let loudest = |audio: &[f32]| {
            let (mel, frames) = fe.log_mel(audio);
            assert_eq!(frames, (audio.len() + HOP) / HOP);
            let t = frames / 2;
            (0..80)
                .max_by(|a, b| mel[a * frames + t].total_cmp(&mel[b * frames + t]))
                .unwrap_or(0)
        };
        let low = loudest(&tone(300.0));
        let high = loudest(&tone(3000.0));
        assert!(low < 20, "300 Hz landed in band {low}");
        assert!(high > 45, "3 kHz landed in band {high}");
        // Normalised: the maximum maps to (max + 4) / 4 and the floor is 8 below it.
        let (mel, _) = fe.log_mel(&tone(1000.0));
        let max = mel.iter().copied().fold(f32::MIN, f32::max);
        let min = mel.iter().copied().fold(f32::MAX, f32::min);
        assert!((max - min - 2.0).abs() < 1e-4, "range {}", max - min);
    }

    #[test]
    fn the_30s_window_pads_with_zeros_and_trims_long_audio() {
        let fe = FrontEnd::new(80);
        let audio = vec![0.1f32; SAMPLE_RATE];
        let (w, used) = fe.window_30s(&audio);
        assert_eq!(used, 101);
        assert_eq!(w.len(), 80 * N_FRAMES);
        assert!(w[used..N_FRAMES].iter().all(|v| *v == 0.0));
        let long = vec![0.0f32; N_SAMPLES + 16_000];
        let (_, used) = fe.window_30s(&long);
        assert_eq!(used, N_FRAMES);
    }
}
