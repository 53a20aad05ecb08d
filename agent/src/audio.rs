//! Audio input, always delivered as 16 kHz mono signed 16-bit samples for Vosk.
//!
//! Two sources behind [`AudioSource`]: [`WavFile`] (any common rate, width and channel
//! count; streamed, not loaded whole) and [`Capture`] (a live device through cpal).
//! Anything not already 16 kHz is converted with rubato's FFT resampler; 16 kHz mono
//! 16-bit input passes through untouched, so file decodes are bit-exact.

use rubato::{FftFixedIn, Resampler as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub const SAMPLE_RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {message}")]
    Wav { path: PathBuf, message: String },
    #[error("no audio capture device available ({0}); use --input FILE.wav, or check the room's microphone")]
    NoDevice(String),
    #[error("audio device {device}: {message}")]
    Device { device: String, message: String },
    #[error("resampler: {0}")]
    Resample(String),
}

/// A source of 16 kHz mono samples.
pub trait AudioSource {
    /// Appends up to `max` samples to `out`; returns how many. 0 means the end.
    fn read(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError>;
    /// Human description for logs and meeting titles.
    fn describe(&self) -> String;
    /// Samples (at the device rate, mono) lost because the reader fell behind by more
    /// than the capture buffer; always 0 for files.
    fn dropped(&self) -> u64 {
        0
    }
}

/// How much audio a live capture buffers while the pipeline is busy (e.g. paused on a
/// full queue) before it starts dropping, and counting what it drops.
pub const CAPTURE_BUFFER_SECS: usize = 30;

/// The callback side of a capture: hands mono chunks to the reader without blocking
/// the audio thread, within a budget of buffered samples.
struct Feed {
    tx: mpsc::SyncSender<Vec<f32>>,
    buffered: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    limit: usize,
}

impl Feed {
    fn send(&self, mono: Vec<f32>) {
        let n = mono.len();
        if self.buffered.load(Ordering::Relaxed) + n > self.limit {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        self.buffered.fetch_add(n, Ordering::Relaxed);
        if self.tx.try_send(mono).is_err() {
            self.buffered.fetch_sub(n, Ordering::Relaxed);
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Streaming mono resampler to 16 kHz that trims the filter delay, so output sample
/// n lines up with input time n / 16000.
pub struct Resampler {
    inner: FftFixedIn<f32>,
    pending: Vec<f32>,
    skip: usize,
    in_total: u64,
    out_total: u64,
    ratio: f64,
}

impl Resampler {
    pub fn new(from_rate: u32) -> Result<Self, AudioError> {
        let inner = FftFixedIn::<f32>::new(from_rate as usize, SAMPLE_RATE as usize, 1024, 2, 1)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let skip = inner.output_delay();
        Ok(Self {
            inner,
            pending: Vec::new(),
            skip,
            in_total: 0,
            out_total: 0,
            ratio: SAMPLE_RATE as f64 / from_rate as f64,
        })
    }

    fn emit(&mut self, chunk: Vec<f32>, out: &mut Vec<i16>, limit: Option<u64>) {
        for x in chunk {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            if limit.is_some_and(|l| self.out_total >= l) {
                return;
            }
            out.push(to_i16(x));
            self.out_total += 1;
        }
    }

    pub fn push(&mut self, input: &[f32], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.pending.extend_from_slice(input);
        self.in_total += input.len() as u64;
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.len() < need {
                return Ok(());
            }
            let chunk: Vec<f32> = self.pending.drain(..need).collect();
            let mut res = self
                .inner
                .process(&[chunk], None)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            self.emit(res.pop().unwrap_or_default(), out, None);
        }
    }

    /// Flushes what is left, padding with silence, up to the exact output length.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let expected = (self.in_total as f64 * self.ratio).round() as u64;
        let rest: Vec<f32> = std::mem::take(&mut self.pending);
        let mut res = self
            .inner
            .process_partial(Some(&[rest]), None)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        self.emit(res.pop().unwrap_or_default(), out, Some(expected));
        let mut guard = 0;
        while self.out_total < expected && guard < 64 {
            let mut res = self
                .inner
                .process_partial::<Vec<f32>>(None, None)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            self.emit(res.pop().unwrap_or_default(), out, Some(expected));
            guard += 1;
        }
        Ok(())
    }
}

/// A WAV file, read incrementally.
pub struct WavFile {
    path: PathBuf,
    reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
    spec: hound::WavSpec,
    resampler: Option<Resampler>,
    /// Read only this channel (per-channel capture) instead of mixing all.
    channel: Option<usize>,
    done: bool,
}

impl WavFile {
    /// Opens a WAV file, mixing all channels to mono.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        Self::open_channel(path, None)
    }

    /// Opens one channel of a WAV file (0-based), or the mono mix with `None`.
    pub fn open_channel(path: &Path, channel: Option<usize>) -> Result<Self, AudioError> {
        let err = |m: String| AudioError::Wav {
            path: path.to_owned(),
            message: m,
        };
        let reader = hound::WavReader::open(path)
            .map_err(|e| err(format!("not a readable WAV file: {e}")))?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate < 4000 || spec.sample_rate > 384_000 {
            return Err(err(format!(
                "unsupported WAV: {} channels at {} Hz",
                spec.channels, spec.sample_rate
            )));
        }
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => {}
            (f, b) => {
                return Err(err(format!(
                    "unsupported sample format {f:?} with {b} bits"
                )))
            }
        }
        if let Some(c) = channel {
            if c >= spec.channels as usize {
                return Err(err(format!(
                    "channel {} requested, the file has {}",
                    c + 1,
                    spec.channels
                )));
            }
        }
        let resampler = if spec.sample_rate == SAMPLE_RATE {
            None
        } else {
            Some(Resampler::new(spec.sample_rate)?)
        };
        Ok(Self {
            path: path.to_owned(),
            reader,
            spec,
            resampler,
            channel,
            done: false,
        })
    }

    pub fn channels(&self) -> u16 {
        self.spec.channels
    }

    /// Total length in 16 kHz samples.
    pub fn duration_samples(&self) -> u64 {
        self.reader.duration() as u64 * SAMPLE_RATE as u64 / self.spec.sample_rate as u64
    }

    fn frames_f32(&mut self, frames: usize) -> Result<Vec<f32>, AudioError> {
        let ch = self.spec.channels as usize;
        let mut mono = Vec::with_capacity(frames);
        let mut acc = 0f32;
        let mut n = 0usize;
        let path = self.path.clone();
        let bad = |e: hound::Error| AudioError::Wav {
            path: path.clone(),
            message: e.to_string(),
        };
        let scale = match self.spec.sample_format {
            hound::SampleFormat::Float => 1.0,
            hound::SampleFormat::Int => 1.0 / (1u64 << (self.spec.bits_per_sample - 1)) as f32,
        };
        let only = self.channel;
        let mut push = |x: f32, mono: &mut Vec<f32>| {
            match only {
                Some(c) if n == c => acc = x,
                Some(_) => {}
                None => acc += x,
            }
            n += 1;
            if n == ch {
                mono.push(if only.is_some() { acc } else { acc / ch as f32 });
                acc = 0.0;
                n = 0;
            }
        };
        match self.spec.sample_format {
            hound::SampleFormat::Float => {
                for s in self.reader.samples::<f32>().take(frames * ch) {
                    push(s.map_err(&bad)?, &mut mono);
                }
            }
            hound::SampleFormat::Int => {
                for s in self.reader.samples::<i32>().take(frames * ch) {
                    push(s.map_err(&bad)? as f32 * scale, &mut mono);
                }
            }
        }
        Ok(mono)
    }
}

impl AudioSource for WavFile {
    fn read(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError> {
        if self.done {
            return Ok(0);
        }
        let before = out.len();
        let exact = self.spec.channels == 1
            && self.spec.bits_per_sample == 16
            && self.spec.sample_format == hound::SampleFormat::Int;
        match self.resampler.as_mut() {
            None if exact => {
                let path = self.path.clone();
                for s in self.reader.samples::<i16>().take(max) {
                    out.push(s.map_err(|e| AudioError::Wav {
                        path: path.clone(),
                        message: e.to_string(),
                    })?);
                }
            }
            None => {
                let mono = self.frames_f32(max)?;
                out.extend(mono.into_iter().map(to_i16));
            }
            Some(_) => {
                while out.len() - before < max {
                    let want = (max as f64 * self.spec.sample_rate as f64 / SAMPLE_RATE as f64)
                        .ceil() as usize;
                    let mono = self.frames_f32(want.max(256))?;
                    let r = self
                        .resampler
                        .as_mut()
                        .ok_or_else(|| AudioError::Resample("missing".into()))?;
                    if mono.is_empty() {
                        r.finish(out)?;
                        self.done = true;
                        break;
                    }
                    r.push(&mono, out)?;
                }
            }
        }
        let n = out.len() - before;
        if n == 0 {
            self.done = true;
        }
        Ok(n)
    }

    fn describe(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string());
        match self.channel {
            Some(c) => format!("{name} channel {}", c + 1),
            None => name,
        }
    }
}

/// Live capture from a cpal input device. The stream lives on the thread that opened
/// it; samples arrive over a channel, are mixed to mono and resampled.
pub struct Capture {
    _stream: cpal::Stream,
    rx: mpsc::Receiver<Vec<f32>>,
    buffered: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    resampler: Option<Resampler>,
    name: String,
}

/// Input devices as (index, name), for `roomscribe-agent devices`.
pub fn list_devices() -> Result<Vec<(usize, String)>, AudioError> {
    use cpal::traits::HostTrait;
    let host = cpal::default_host();
    let devices = host
        .input_devices()
        .map_err(|e| AudioError::NoDevice(e.to_string()))?;
    Ok(devices
        .enumerate()
        .map(|(i, d)| (i, d.to_string()))
        .collect())
}

impl Capture {
    /// Opens `device`: "default", a device name, or an index from [`list_devices`].
    pub fn open(device: &str) -> Result<Self, AudioError> {
        use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
        let host = cpal::default_host();
        let dev = if device == "default" {
            host.default_input_device().ok_or_else(|| {
                AudioError::NoDevice("the host reports no default input device".into())
            })?
        } else {
            let mut devices = host
                .input_devices()
                .map_err(|e| AudioError::NoDevice(e.to_string()))?;
            match device.parse::<usize>() {
                Ok(i) => devices.nth(i),
                Err(_) => devices.find(|d| d.to_string() == device),
            }
            .ok_or_else(|| {
                AudioError::NoDevice(format!(
                    "no input device {device:?}; see `roomscribe-agent devices`"
                ))
            })?
        };
        let name = dev.to_string();
        let derr = |m: String| AudioError::Device {
            device: name.clone(),
            message: m,
        };
        // Prefer capturing at 16 kHz when the device offers it (no resampling at all);
        // otherwise take its default and resample.
        let at_16k = dev.supported_input_configs().ok().and_then(|mut configs| {
            configs.find_map(|c| {
                let ok = c.min_sample_rate() <= SAMPLE_RATE
                    && c.max_sample_rate() >= SAMPLE_RATE
                    && matches!(
                        c.sample_format(),
                        cpal::SampleFormat::F32 | cpal::SampleFormat::I16 | cpal::SampleFormat::I32
                    );
                ok.then(|| c.with_sample_rate(SAMPLE_RATE))
            })
        });
        let config = match at_16k {
            Some(c) => c,
            None => dev
                .default_input_config()
                .map_err(|e| derr(e.to_string()))?,
        };
        let channels = config.channels() as usize;
        let rate = config.sample_rate();
        // Chunk count is bounded by the sample budget below; the channel itself only
        // needs room for many small periods.
        let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(1 << 16);
        let buffered = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let tx = Feed {
            tx,
            buffered: buffered.clone(),
            dropped: dropped.clone(),
            limit: rate as usize * CAPTURE_BUFFER_SECS,
        };
        let mono = move |data: &[f32]| -> Vec<f32> {
            data.chunks(channels.max(1))
                .map(|f| f.iter().sum::<f32>() / f.len() as f32)
                .collect()
        };
        let on_err = |e: cpal::Error| tracing::warn!(error = %e, "capture stream error");
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => dev.build_input_stream(
                config.into(),
                move |d: &[f32], _: &cpal::InputCallbackInfo| {
                    tx.send(mono(d));
                },
                on_err,
                None,
            ),
            cpal::SampleFormat::I16 => dev.build_input_stream(
                config.into(),
                move |d: &[i16], _: &cpal::InputCallbackInfo| {
                    let f: Vec<f32> = d.iter().map(|&s| s as f32 / 32768.0).collect();
                    tx.send(mono(&f));
                },
                on_err,
                None,
            ),
            cpal::SampleFormat::I32 => dev.build_input_stream(
                config.into(),
                move |d: &[i32], _: &cpal::InputCallbackInfo| {
                    let f: Vec<f32> = d.iter().map(|&s| s as f32 / 2_147_483_648.0).collect();
                    tx.send(mono(&f));
                },
                on_err,
                None,
            ),
            other => return Err(derr(format!("unsupported sample format {other}"))),
        }
        .map_err(|e| AudioError::NoDevice(format!("{name}: {e}")))?;
        stream.play().map_err(|e| derr(e.to_string()))?;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(Resampler::new(rate)?)
        };
        Ok(Self {
            _stream: stream,
            rx,
            buffered,
            dropped,
            resampler,
            name,
        })
    }
}

impl AudioSource for Capture {
    fn read(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError> {
        let before = out.len();
        while out.len() - before < max.min(1600) {
            match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(chunk) => {
                    self.buffered.fetch_sub(chunk.len(), Ordering::Relaxed);
                    match self.resampler.as_mut() {
                        Some(r) => r.push(&chunk, out)?,
                        None => out.extend(chunk.into_iter().map(to_i16)),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(AudioError::Device {
                        device: self.name.clone(),
                        message: "stream closed".into(),
                    })
                }
            }
        }
        // An empty read on a live device is not the end: report 1 silent sample so the
        // caller keeps going (and can check its stop flag).
        if out.len() == before {
            out.push(0);
        }
        Ok(out.len() - before)
    }

    fn describe(&self) -> String {
        format!("Live capture ({})", self.name)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f32) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        let n = (rate as f32 * seconds) as usize;
        for i in 0..n {
            // A 440 Hz tone, the same on every channel.
            let v = ((i as f32 / rate as f32) * 440.0 * std::f32::consts::TAU).sin() * 0.5;
            for _ in 0..channels {
                w.write_sample(to_i16(v)).expect("sample");
            }
        }
        w.finalize().expect("finalize");
    }

    fn read_all(src: &mut dyn AudioSource) -> Vec<i16> {
        let mut out = Vec::new();
        while src.read(&mut out, 4000).expect("read") > 0 {}
        out
    }

    #[test]
    fn resampled_stereo_keeps_length_and_tone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.wav");
        write_wav(&p, 44_100, 2, 2.0);
        let mut f = WavFile::open(&p).expect("open");
        let s = read_all(&mut f);
        assert!((s.len() as i64 - 32_000).abs() <= 1, "{} samples", s.len());
        // Count zero crossings in the middle second: a 440 Hz tone has ~880.
        let mid = &s[8000..24_000];
        let crossings = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((860..=900).contains(&crossings), "{crossings} crossings");
        let peak = mid.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        assert!((15_000..=18_000).contains(&peak), "peak {peak}");
    }

    #[test]
    fn sixteen_k_mono_passes_through_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.wav");
        write_wav(&p, 16_000, 1, 1.0);
        let expected: Vec<i16> = hound::WavReader::open(&p)
            .expect("open")
            .samples::<i16>()
            .map(|s| s.expect("s"))
            .collect();
        assert_eq!(read_all(&mut WavFile::open(&p).expect("open")), expected);
    }

    #[test]
    fn one_channel_of_a_stereo_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("two.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create");
        for i in 0..1000i16 {
            w.write_sample(i).expect("left");
            w.write_sample(-i).expect("right");
        }
        w.finalize().expect("finalize");
        let left = read_all(&mut WavFile::open_channel(&path, Some(0)).expect("open"));
        let right = read_all(&mut WavFile::open_channel(&path, Some(1)).expect("open"));
        let mix = read_all(&mut WavFile::open(&path).expect("open"));
        assert_eq!(left.len(), 1000);
        assert!((left[500] - 500).abs() <= 1 && (right[500] + 500).abs() <= 1);
        assert!(mix.iter().all(|s| s.abs() <= 1), "left and right cancel");
        assert!(matches!(
            WavFile::open_channel(&path, Some(2)),
            Err(AudioError::Wav { .. })
        ));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.wav");
        std::fs::write(&p, b"not a wav at all").expect("write");
        let e = WavFile::open(&p).err().expect("error");
        assert!(e.to_string().contains("a.wav"), "{e}");
    }
}
