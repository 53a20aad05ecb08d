//! Online clustering of a meeting's voices: each stretch of speech is compared with
//! the voices heard so far (the mean of their embeddings) and joins the most similar
//! one, or starts a new one while there is room; when the evidence is weak — speech
//! too short, no voice similar enough once the room is full, or two voices almost
//! equally similar — it is left unknown rather than given a confident wrong label.

use super::encoder::{cosine, Embedding, EMBEDDING};

/// Speech shorter than this says too little about its voice to be labelled.
pub const MIN_SECONDS: f32 = 1.0;
/// Two voices this close in similarity to a stretch: neither is claimed.
pub const AMBIGUITY_MARGIN: f32 = 0.04;

/// What a stretch of speech was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// The n-th voice of the meeting (1, 2, …).
    Speaker(usize),
    Unknown,
}

impl Voice {
    /// The segment's speaker label: `Speaker N`, or none (the appliance shows an
    /// unlabelled segment as "unknown").
    pub fn label(self) -> Option<String> {
        match self {
            Voice::Speaker(n) => Some(format!("Speaker {n}")),
            Voice::Unknown => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Cluster {
    sum: Vec<f32>,
    centroid: Embedding,
}

impl Cluster {
    fn new(e: &Embedding) -> Self {
        Self {
            sum: e.to_vec(),
            centroid: *e,
        }
    }

    fn add(&mut self, e: &Embedding) {
        for (s, x) in self.sum.iter_mut().zip(e) {
            *s += x;
        }
        let norm = self.sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > f32::EPSILON {
            for (c, s) in self.centroid.iter_mut().zip(&self.sum) {
                *c = s / norm;
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Clusterer {
    threshold: f32,
    max_speakers: usize,
    clusters: Vec<Cluster>,
}

impl Clusterer {
    /// `threshold`: the cosine similarity at which a stretch is taken for a voice
    /// already heard; `max_speakers`: how many voices a meeting may have.
    pub fn new(threshold: f32, max_speakers: usize) -> Self {
        Self {
            threshold,
            max_speakers: max_speakers.max(1),
            clusters: vec![],
        }
    }

    /// Voices heard so far.
    pub fn voices(&self) -> usize {
        self.clusters.len()
    }

    /// The voice of a stretch of speech `seconds` long with embedding `e` (`None`:
    /// no embedding, e.g. silence).
    pub fn assign(&mut self, e: Option<&Embedding>, seconds: f32) -> Voice {
        let Some(e) = e.filter(|_| seconds >= MIN_SECONDS) else {
            return Voice::Unknown;
        };
        debug_assert_eq!(e.len(), EMBEDDING);
        let mut sims: Vec<(f32, usize)> = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (cosine(&c.centroid, e), i))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        match (sims.first().copied(), sims.get(1).copied()) {
            (Some((best, i)), second) if best >= self.threshold => {
                if second.is_some_and(|(s, _)| best - s < AMBIGUITY_MARGIN) {
                    return Voice::Unknown;
                }
                self.clusters[i].add(e);
                Voice::Speaker(i + 1)
            }
            _ if self.clusters.len() < self.max_speakers => {
                self.clusters.push(Cluster::new(e));
                Voice::Speaker(self.clusters.len())
            }
            _ => Voice::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector mostly along axis `a`, a little along `b`.
    fn voice(a: usize, b: usize, w: f32) -> Embedding {
        let mut e = [0f32; EMBEDDING];
        e[a] = 1.0;
        e[b] += w;
        let n = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        e.map(|x| x / n)
    }

    #[test]
    fn voices_are_numbered_as_they_are_first_heard_and_recognised_after() {
        let mut c = Clusterer::new(0.75, 4);
        assert_eq!(c.assign(Some(&voice(0, 9, 0.1)), 3.0), Voice::Speaker(1));
        assert_eq!(c.assign(Some(&voice(1, 9, 0.1)), 3.0), Voice::Speaker(2));
        assert_eq!(c.assign(Some(&voice(0, 8, 0.2)), 3.0), Voice::Speaker(1));
        assert_eq!(c.assign(Some(&voice(1, 7, 0.2)), 2.0), Voice::Speaker(2));
        assert_eq!(c.voices(), 2);
        assert_eq!(Voice::Speaker(2).label().as_deref(), Some("Speaker 2"));
        assert_eq!(Voice::Unknown.label(), None);
    }

    #[test]
    fn weak_evidence_is_unknown_never_a_guess() {
        let mut c = Clusterer::new(0.75, 2);
        // Too short, or nothing to embed.
        assert_eq!(c.assign(Some(&voice(0, 9, 0.1)), 0.5), Voice::Unknown);
        assert_eq!(c.assign(None, 5.0), Voice::Unknown);
        assert_eq!(c.voices(), 0);
        c.assign(Some(&voice(0, 9, 0.1)), 3.0);
        c.assign(Some(&voice(1, 9, 0.1)), 3.0);
        // The room is full and a third voice is like neither.
        assert_eq!(c.assign(Some(&voice(2, 9, 0.1)), 3.0), Voice::Unknown);
        // Halfway between the two voices: both equally similar.
        let mut mid = [0f32; EMBEDDING];
        mid[0] = 1.0;
        mid[1] = 1.0;
        mid[9] = 0.2;
        let n = mid.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mid = mid.map(|x| x / n);
        let mut loose = Clusterer::new(0.5, 2);
        loose.assign(Some(&voice(0, 9, 0.1)), 3.0);
        loose.assign(Some(&voice(1, 9, 0.1)), 3.0);
        assert_eq!(loose.assign(Some(&mid), 3.0), Voice::Unknown);
    }
}
