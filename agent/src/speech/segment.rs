//! Voice-activity detection and the decision what to do with each chunk of audio.
//!
//! [`Vad`] is an energy detector with an adaptive noise floor: 20 ms frames whose RMS
//! level is at least `margin_db` above the floor *and* above `min_speech_dbfs` count as
//! speech, and speech keeps the detector active for a hangover of 300 ms. The floor
//! follows quieter frames at once and rises by at most 6 dB per second, so steady room
//! noise (projector fans, air conditioning) becomes the floor within seconds, while
//! speech, which dips between words, keeps pulling it back down.
//!
//! [`Segmenter`] turns that into one [`Step`] per chunk: after `skip_after` of
//! continuous non-speech the recognizer is ended and silence is no longer fed to it (a
//! silent room costs nothing); when speech returns, the last skipped chunk is fed first
//! as pre-roll so the first syllable is not clipped. Pure logic, no I/O: the pipeline
//! applies the steps and keeps the meeting clock right by telling the recognizer how
//! much audio it skipped.

use crate::capture::audio::level_dbfs;

/// 20 ms at 16 kHz.
const FRAME: usize = 320;
const HANGOVER_FRAMES: u32 = 15;
const FLOOR_RISE_DB_PER_FRAME: f32 = 6.0 / 50.0;

#[derive(Debug, Clone, PartialEq)]
pub struct VadParams {
    pub margin_db: f32,
    pub min_speech_dbfs: f32,
}

#[derive(Debug, Clone)]
pub struct Vad {
    params: VadParams,
    floor_db: f32,
    hangover: u32,
}

impl Vad {
    pub fn new(params: VadParams) -> Self {
        Self {
            floor_db: params.min_speech_dbfs - params.margin_db,
            params,
            hangover: 0,
        }
    }

    /// Feeds one chunk; true if any of its frames is speech (or within the hangover).
    pub fn active(&mut self, samples: &[i16]) -> bool {
        let mut any = false;
        for frame in samples.chunks(FRAME) {
            let level = level_dbfs(frame);
            let speech = level >= self.floor_db + self.params.margin_db
                && level >= self.params.min_speech_dbfs;
            if level < self.floor_db {
                self.floor_db = level;
            } else {
                self.floor_db = (self.floor_db + FLOOR_RISE_DB_PER_FRAME).min(level);
            }
            if speech {
                self.hangover = HANGOVER_FRAMES;
                any = true;
            } else if self.hangover > 0 {
                self.hangover -= 1;
                any = true;
            }
        }
        any
    }

    pub fn floor_dbfs(&self) -> f32 {
        self.floor_db
    }
}

/// What to do with a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Feed the chunk to the recognizer.
    Feed,
    /// Silence has lasted `skip_after`: end the recognizer's utterance; this chunk is
    /// held back (it may become pre-roll).
    StartSkipping,
    /// Still silent: this chunk is held back and the one held before it, `dropped`
    /// samples, is skipped for good.
    Skip { dropped: usize },
    /// Speech is back: feed `preroll` (skipped audio just before it) and then the chunk.
    Resume { preroll: Vec<i16> },
}

#[derive(Debug)]
pub struct Segmenter {
    vad: Vad,
    skip_after: u64,
    silence_run: u64,
    skipping: bool,
    held: Vec<i16>,
}

impl Segmenter {
    /// `skip_after` in samples; 0 never skips.
    pub fn new(vad: Vad, skip_after: u64) -> Self {
        Self {
            vad,
            skip_after,
            silence_run: 0,
            skipping: false,
            held: Vec::new(),
        }
    }

    pub fn step(&mut self, chunk: &[i16]) -> Step {
        let speech = self.vad.active(chunk);
        if speech {
            self.silence_run = 0;
            if self.skipping {
                self.skipping = false;
                return Step::Resume {
                    preroll: std::mem::take(&mut self.held),
                };
            }
            return Step::Feed;
        }
        self.silence_run += chunk.len() as u64;
        let step = if self.skipping {
            Step::Skip {
                dropped: self.held.len(),
            }
        } else if self.skip_after > 0 && self.silence_run >= self.skip_after {
            self.skipping = true;
            Step::StartSkipping
        } else {
            return Step::Feed;
        };
        self.held.clear();
        self.held.extend_from_slice(chunk);
        step
    }

    /// Samples held back at the end of the stream (skipped, never fed).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn vad(&self) -> &Vad {
        &self.vad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VadParams {
        VadParams {
            margin_db: 10.0,
            min_speech_dbfs: -55.0,
        }
    }

    /// Deterministic noise at roughly `dbfs`.
    fn noise(n: usize, dbfs: f32, seed: &mut u32) -> Vec<i16> {
        let amp = 32768.0 * 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let u = (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                (u * amp) as i16
            })
            .collect()
    }

    fn tone(n: usize, dbfs: f32) -> Vec<i16> {
        let amp = 32768.0 * 10f32.powf(dbfs / 20.0) * 2f32.sqrt();
        (0..n)
            .map(|i| (amp * (i as f32 * 0.2).sin()) as i16)
            .collect()
    }

    #[test]
    fn speech_over_steady_noise_is_detected_and_noise_alone_is_not() {
        let mut seed = 7;
        let mut vad = Vad::new(params());
        // Five seconds of -50 dBFS fan noise, louder than min_speech_dbfs: the floor
        // must learn it, and after that it is not speech.
        let mut active_late = 0;
        for i in 0..20 {
            let a = vad.active(&noise(4000, -50.0, &mut seed));
            if i >= 16 && a {
                active_late += 1;
            }
        }
        assert_eq!(active_late, 0, "steady noise became the floor");
        assert!(
            (vad.floor_dbfs() + 50.0).abs() < 3.0,
            "{}",
            vad.floor_dbfs()
        );
        // Speech 20 dB above it is detected.
        let mut loud = noise(4000, -50.0, &mut seed);
        for (s, t) in loud.iter_mut().zip(tone(4000, -30.0)) {
            *s = s.saturating_add(t);
        }
        assert!(vad.active(&loud));
    }

    #[test]
    fn digital_silence_and_quiet_hiss_are_not_speech() {
        let mut seed = 1;
        let mut vad = Vad::new(params());
        assert!(!vad.active(&[0; 4000]));
        assert!(
            !vad.active(&noise(4000, -70.0, &mut seed)),
            "below min_speech_dbfs"
        );
    }

    #[test]
    fn segmenter_skips_long_silence_and_resumes_with_preroll() {
        let mut seg = Segmenter::new(Vad::new(params()), 3 * 4000);
        let speech = tone(4000, -20.0);
        let silence = vec![0i16; 4000];
        assert_eq!(seg.step(&speech), Step::Feed);
        // Hangover (300 ms) keeps the first silent chunk active.
        assert_eq!(seg.step(&silence), Step::Feed);
        let mut steps = vec![];
        for _ in 0..7 {
            steps.push(seg.step(&silence));
        }
        // The hangover keeps one more chunk active; then 3 chunks of silence reach
        // skip_after.
        let skip = Step::Skip { dropped: 4000 };
        assert_eq!(
            steps,
            vec![
                Step::Feed,
                Step::Feed,
                Step::Feed,
                Step::StartSkipping,
                skip.clone(),
                skip.clone(),
                skip
            ]
        );
        assert_eq!(seg.held(), 4000);
        match seg.step(&speech) {
            Step::Resume { preroll } => assert_eq!(preroll, silence),
            other => panic!("expected resume, got {other:?}"),
        }
        assert_eq!(seg.step(&speech), Step::Feed);
    }

    #[test]
    fn zero_never_skips() {
        let mut seg = Segmenter::new(Vad::new(params()), 0);
        for _ in 0..100 {
            assert_eq!(seg.step(&[0; 4000]), Step::Feed);
        }
    }
}
