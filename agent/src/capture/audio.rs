//! Audio input, always delivered as 16 kHz mono signed 16-bit samples for Vosk.
//!
//! Two sources behind [`AudioSource`]: [`WavFile`] (any common rate, width and channel
//! count; streamed, not loaded whole) and [`Capture`] (a live device through cpal).
//! Anything not already 16 kHz is converted with rubato's FFT resampler; 16 kHz mono
//! 16-bit input passes through untouched, so file decodes are bit-exact.

use rubato::{FftFixedIn, Resampler as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

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
    /// False while a live device is lost (and being reopened); always true for files.
    fn connected(&self) -> bool {
        true
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

/// How long a live device may deliver nothing before it is treated as lost.
pub const STALL_SECS: u64 = 3;
/// How often a lost device is reopened.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// One open cpal input stream. Frames arrive interleaved over a channel; the stream
/// lives on the thread that opened it.
struct DeviceStream {
    _stream: cpal::Stream,
    rx: mpsc::Receiver<Vec<f32>>,
    buffered: Arc<AtomicUsize>,
    /// Set by the error callback when the device went away (unplugged, sound server
    /// gone): the reader then drops the stream and reopens the device.
    lost: Arc<AtomicBool>,
    channels: usize,
    rate: u32,
    name: String,
}

/// Finds the input device `spec` names: "default", a device name, or an index.
/// The name of the input device `spec` ("default", a name or an index) names, if it is
/// there now (nothing is opened).
pub fn device_name(spec: &str) -> Result<String, AudioError> {
    find_device(spec).map(|d| d.to_string())
}

fn find_device(spec: &str) -> Result<cpal::Device, AudioError> {
    use cpal::traits::HostTrait;
    let host = cpal::default_host();
    if spec == "default" {
        return host.default_input_device().ok_or_else(|| {
            AudioError::NoDevice("the host reports no default input device".into())
        });
    }
    let mut devices = host
        .input_devices()
        .map_err(|e| AudioError::NoDevice(e.to_string()))?;
    match spec.parse::<usize>() {
        Ok(i) => devices.nth(i),
        Err(_) => devices.find(|d| d.to_string() == spec),
    }
    .ok_or_else(|| {
        AudioError::NoDevice(format!(
            "no input device {spec:?}; see `roomscribe-agent devices`"
        ))
    })
}

impl DeviceStream {
    /// Opens `spec`. With `all_channels` the device's full channel count is captured
    /// (per-channel transcription); otherwise any channel count will do.
    fn open(spec: &str, all_channels: bool, dropped: &Arc<AtomicU64>) -> Result<Self, AudioError> {
        use cpal::traits::{DeviceTrait, StreamTrait};
        let dev = find_device(spec)?;
        let name = dev.to_string();
        let derr = |m: String| AudioError::Device {
            device: name.clone(),
            message: m,
        };
        let default = dev
            .default_input_config()
            .map_err(|e| AudioError::NoDevice(format!("{name}: {e}")))?;
        // Prefer capturing at 16 kHz when the device offers it (no resampling at all);
        // otherwise take its default and resample.
        let want_channels = all_channels.then(|| default.channels());
        let at_16k = dev.supported_input_configs().ok().and_then(|mut configs| {
            configs.find_map(|c| {
                let ok = c.min_sample_rate() <= SAMPLE_RATE
                    && c.max_sample_rate() >= SAMPLE_RATE
                    && want_channels.is_none_or(|n| c.channels() == n)
                    && matches!(
                        c.sample_format(),
                        cpal::SampleFormat::F32 | cpal::SampleFormat::I16 | cpal::SampleFormat::I32
                    );
                ok.then(|| c.with_sample_rate(SAMPLE_RATE))
            })
        });
        let config = at_16k.unwrap_or(default);
        let channels = (config.channels() as usize).max(1);
        let rate = config.sample_rate();
        // Chunk count is bounded by the sample budget below; the channel itself only
        // needs room for many small periods.
        let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(1 << 16);
        let buffered = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(AtomicBool::new(false));
        let tx = Feed {
            tx,
            buffered: buffered.clone(),
            dropped: dropped.clone(),
            limit: rate as usize * channels * CAPTURE_BUFFER_SECS,
        };
        let lost_flag = lost.clone();
        let on_err = move |e: cpal::Error| {
            // An overrun only loses a period; anything else means the stream is dead.
            if e.kind() != cpal::ErrorKind::Xrun && !lost_flag.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "capture stream failed");
            }
        };
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => dev.build_input_stream(
                config.into(),
                move |d: &[f32], _: &cpal::InputCallbackInfo| tx.send(d.to_vec()),
                on_err,
                None,
            ),
            cpal::SampleFormat::I16 => dev.build_input_stream(
                config.into(),
                move |d: &[i16], _: &cpal::InputCallbackInfo| {
                    tx.send(d.iter().map(|&s| s as f32 / 32768.0).collect())
                },
                on_err,
                None,
            ),
            cpal::SampleFormat::I32 => dev.build_input_stream(
                config.into(),
                move |d: &[i32], _: &cpal::InputCallbackInfo| {
                    tx.send(d.iter().map(|&s| s as f32 / 2_147_483_648.0).collect())
                },
                on_err,
                None,
            ),
            other => return Err(derr(format!("unsupported sample format {other}"))),
        }
        .map_err(|e| AudioError::NoDevice(format!("{name}: {e}")))?;
        stream.play().map_err(|e| derr(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            rx,
            buffered,
            lost,
            channels,
            rate,
            name,
        })
    }
}

/// Live capture from a cpal input device, as one mono mix or (with
/// [`Capture::split`]) one source per channel, all at 16 kHz.
///
/// A device that fails (unplugged, sound server restarted) or stays silent for
/// [`STALL_SECS`] is closed and reopened every second, by the same name or index; in
/// between, the capture delivers digital silence at real time, so the meeting clock
/// runs on and the pipeline keeps checking its stop flag. [`AudioSource::connected`]
/// tells the pipeline (and so the heartbeat's `device_lost` alarm) which state it is in.
pub struct Capture {
    spec: String,
    name: String,
    stream: Option<DeviceStream>,
    /// Output channels: 1 (the mix), or one per device channel when split.
    outputs: usize,
    split: bool,
    resamplers: Vec<Resampler>,
    resampled_from: u32,
    pending: Vec<std::collections::VecDeque<i16>>,
    dropped: Arc<AtomicU64>,
    last_audio: Instant,
    /// While lost: when silence filling started and how many samples it delivered.
    lost_since: Option<(Instant, u64)>,
    next_reopen: Instant,
    reconnects: u64,
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
    /// With `per_channel`, every channel of the device is kept apart (see [`split`]).
    /// Fails with a clear error when the device cannot be opened now.
    ///
    /// [`split`]: Capture::split
    pub fn open(device: &str, per_channel: bool) -> Result<Self, AudioError> {
        let dropped = Arc::new(AtomicU64::new(0));
        let stream = DeviceStream::open(device, per_channel, &dropped)?;
        let outputs = if per_channel { stream.channels } else { 1 };
        let mut c = Self::new(device, per_channel, outputs, dropped);
        c.attach(stream)?;
        Ok(c)
    }

    /// Like [`open`](Capture::open), but a device that cannot be opened now gives a
    /// capture in the lost state that keeps trying (`outputs` channels when split).
    pub fn open_or_wait(device: &str, per_channel: bool, outputs: usize) -> Self {
        match Self::open(device, per_channel) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "capture device unavailable; retrying every second");
                let mut c = Self::new(
                    device,
                    per_channel,
                    if per_channel { outputs.max(1) } else { 1 },
                    Arc::new(AtomicU64::new(0)),
                );
                c.lost_since = Some((Instant::now(), 0));
                c
            }
        }
    }

    fn new(spec: &str, split: bool, outputs: usize, dropped: Arc<AtomicU64>) -> Self {
        Self {
            spec: spec.to_owned(),
            name: spec.to_owned(),
            stream: None,
            outputs,
            split,
            resamplers: vec![],
            resampled_from: SAMPLE_RATE,
            pending: vec![Default::default(); outputs],
            dropped,
            last_audio: Instant::now(),
            lost_since: None,
            next_reopen: Instant::now(),
            reconnects: 0,
        }
    }

    fn attach(&mut self, stream: DeviceStream) -> Result<(), AudioError> {
        if stream.rate != self.resampled_from || self.resamplers.len() != self.outputs {
            self.resamplers = if stream.rate == SAMPLE_RATE {
                vec![]
            } else {
                (0..self.outputs)
                    .map(|_| Resampler::new(stream.rate))
                    .collect::<Result<_, _>>()?
            };
            self.resampled_from = stream.rate;
        }
        self.name.clone_from(&stream.name);
        self.stream = Some(stream);
        self.last_audio = Instant::now();
        self.lost_since = None;
        Ok(())
    }

    /// How many sources [`split`](Capture::split) yields.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// How many times a lost device came back.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// One source per output channel, reading this capture in lockstep (the pipeline
    /// reads every channel once per chunk).
    pub fn split(self) -> Vec<Box<dyn AudioSource>> {
        let n = self.outputs;
        let shared = std::rc::Rc::new(std::cell::RefCell::new(self));
        (0..n)
            .map(|index| {
                Box::new(ChannelTap {
                    shared: shared.clone(),
                    index,
                }) as Box<dyn AudioSource>
            })
            .collect()
    }

    /// Moves a chunk of interleaved device frames into the per-output buffers.
    fn deliver(&mut self, frames: &[f32], channels: usize) -> Result<(), AudioError> {
        let outputs: Vec<Vec<f32>> = if self.split {
            (0..self.outputs)
                .map(|o| {
                    frames
                        .chunks(channels)
                        .map(|f| f.get(o).copied().unwrap_or(0.0))
                        .collect()
                })
                .collect()
        } else {
            vec![frames
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / f.len() as f32)
                .collect()]
        };
        for (o, mono) in outputs.into_iter().enumerate() {
            let mut out = Vec::with_capacity(mono.len());
            match self.resamplers.get_mut(o) {
                Some(r) => r.push(&mono, &mut out)?,
                None => out.extend(mono.into_iter().map(to_i16)),
            }
            self.pending[o].extend(out);
        }
        Ok(())
    }

    fn lose(&mut self, why: &str) {
        if let Some(s) = self.stream.take() {
            tracing::warn!(device = %s.name, why, "capture device lost; reopening it every second");
            // Closing a dead stream joins its audio thread, which a vanished sound
            // server can leave blocked for good (seen with ALSA's pulse plugin): close
            // it on a thread of its own so capture carries on either way.
            let _ = std::thread::Builder::new()
                .name("capture-close".into())
                .spawn(move || drop(s));
        }
        self.lost_since = Some((Instant::now(), 0));
        self.next_reopen = Instant::now() + REOPEN_EVERY;
    }

    /// Reads about 0.1 s of audio into the per-output buffers (or waits up to 0.5 s).
    fn pull(&mut self) -> Result<(), AudioError> {
        let Some(s) = self.stream.as_ref() else {
            return self.pull_lost();
        };
        if s.lost.load(Ordering::Relaxed) {
            self.lose("stream error");
            return self.pull_lost();
        }
        let (channels, want) = (s.channels, s.rate as usize * s.channels / 10);
        let mut got = 0;
        while got < want {
            let Some(s) = self.stream.as_ref() else { break };
            match s.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(chunk) => {
                    s.buffered.fetch_sub(chunk.len(), Ordering::Relaxed);
                    got += chunk.len();
                    self.last_audio = Instant::now();
                    self.deliver(&chunk, channels)?;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.lose("stream closed");
                    break;
                }
            }
        }
        if self.stream.is_some() && self.last_audio.elapsed() >= Duration::from_secs(STALL_SECS) {
            self.lose("no audio");
        }
        Ok(())
    }

    /// While the device is lost: tries to reopen it, and meanwhile delivers silence at
    /// real time.
    fn pull_lost(&mut self) -> Result<(), AudioError> {
        if Instant::now() >= self.next_reopen {
            self.next_reopen = Instant::now() + REOPEN_EVERY;
            match DeviceStream::open(&self.spec, self.split, &self.dropped) {
                Ok(stream) => {
                    let silent = self.lost_since.map(|(t, _)| t.elapsed().as_secs_f64());
                    self.fill_silence();
                    self.attach(stream)?;
                    self.reconnects += 1;
                    tracing::info!(device = %self.name, after_s = silent.unwrap_or(0.0), "capture device is back");
                    return Ok(());
                }
                Err(e) => tracing::debug!(error = %e, "capture device still unavailable"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        self.fill_silence();
        Ok(())
    }

    /// Pads every output with the silence owed since the device was lost.
    fn fill_silence(&mut self) {
        if let Some((since, delivered)) = self.lost_since.as_mut() {
            let due = (since.elapsed().as_secs_f64() * SAMPLE_RATE as f64) as u64;
            let n = due.saturating_sub(*delivered);
            *delivered += n;
            for p in &mut self.pending {
                p.extend(std::iter::repeat_n(0i16, n as usize));
            }
        }
    }

    /// Hands output `index` up to `max` buffered samples, pulling from the device
    /// first when it has none. Never 0: an empty read on a live device is one silent
    /// sample, so the caller keeps going (and can check its stop flag).
    fn read_output(
        &mut self,
        index: usize,
        out: &mut Vec<i16>,
        max: usize,
    ) -> Result<usize, AudioError> {
        if self.pending[index].is_empty() {
            self.pull()?;
        }
        let p = &mut self.pending[index];
        let n = p.len().min(max);
        out.extend(p.drain(..n));
        if n == 0 {
            out.push(0);
            return Ok(1);
        }
        Ok(n)
    }

    /// Reads up to `max` samples of the mix of every output, keeping the outputs in
    /// step (idle listening on a split capture). Never 0, like [`AudioSource::read`].
    pub fn read_mix(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError> {
        if self.pending.iter().any(|p| p.is_empty()) {
            self.pull()?;
        }
        let n = self
            .pending
            .iter()
            .map(|p| p.len())
            .min()
            .unwrap_or(0)
            .min(max);
        let outputs = self.pending.len() as i32;
        for i in 0..n {
            let sum: i32 = self.pending.iter().map(|p| p[i] as i32).sum();
            out.push((sum / outputs) as i16);
        }
        for p in &mut self.pending {
            p.drain(..n);
        }
        if n == 0 {
            out.push(0);
            return Ok(1);
        }
        Ok(n)
    }

    fn describe_live(&self) -> String {
        format!("Live capture ({})", self.name)
    }
}

impl AudioSource for Capture {
    fn read(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError> {
        self.read_output(0, out, max.min(1600))
    }

    fn describe(&self) -> String {
        self.describe_live()
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn connected(&self) -> bool {
        self.stream.is_some()
    }
}

/// One channel of a split [`Capture`].
struct ChannelTap {
    shared: std::rc::Rc<std::cell::RefCell<Capture>>,
    index: usize,
}

impl AudioSource for ChannelTap {
    fn read(&mut self, out: &mut Vec<i16>, max: usize) -> Result<usize, AudioError> {
        self.shared
            .borrow_mut()
            .read_output(self.index, out, max.min(1600))
    }

    fn describe(&self) -> String {
        format!(
            "{} channel {}",
            self.shared.borrow().describe_live(),
            self.index + 1
        )
    }

    fn dropped(&self) -> u64 {
        // Counted once for the device, on its first channel.
        if self.index == 0 {
            self.shared.borrow().dropped()
        } else {
            0
        }
    }

    fn connected(&self) -> bool {
        self.shared.borrow().connected()
    }
}

/// RMS level of 16-bit samples in dBFS (-120 for digital silence).
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
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
    fn live_frames_are_split_or_mixed_and_a_lost_device_gives_silence() {
        // Two interleaved channels at 16 kHz: left counts up, right counts down.
        let frames: Vec<f32> = (0..800)
            .flat_map(|i| [i as f32 / 32768.0, -(i as f32) / 32768.0])
            .collect();
        let mut split = Capture::new("test", true, 2, Arc::new(AtomicU64::new(0)));
        split.deliver(&frames, 2).expect("deliver");
        let mut taps = split.split();
        let (mut left, mut right) = (vec![], vec![]);
        assert_eq!(taps[0].read(&mut left, 4000).expect("read"), 800);
        assert_eq!(taps[1].read(&mut right, 4000).expect("read"), 800);
        assert_eq!((left[500], right[500]), (500, -500));
        assert_eq!(taps[1].describe(), "Live capture (test) channel 2");

        let mut mono = Capture::new("test", false, 1, Arc::new(AtomicU64::new(0)));
        mono.deliver(&frames, 2).expect("deliver");
        let mut mix = vec![];
        mono.read_output(0, &mut mix, 4000).expect("read");
        assert!(mix.iter().all(|&s| s == 0), "left and right cancel");

        // Lost: nothing is connected, and silence accrues at real time.
        mono.lost_since = Some((Instant::now() - Duration::from_millis(500), 0));
        assert!(!mono.connected());
        mono.fill_silence();
        let owed = mono.pending[0].len();
        assert!((7_900..=16_000).contains(&owed), "{owed} samples for 0.5 s");
        mono.fill_silence();
        assert!(mono.pending[0].len() - owed < 1_600, "not delivered twice");
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
