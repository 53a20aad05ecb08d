//! The per-agent envelope sequence rule, as a pure function.
//!
//! Each agent numbers its envelopes 1, 2, 3, ... and sends them in order from its
//! durable queue. The appliance accepts exactly the next number. An envelope at or
//! below the last accepted number is a replay: identical bytes are acknowledged again
//! (the agent may have missed the first acknowledgement), anything else is refused.

/// What the appliance should do with an envelope of sequence `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceVerdict {
    /// The next expected envelope: store it.
    Next,
    /// Already accepted: acknowledge again if the bytes are identical, else reject.
    AlreadySeen,
    /// Ahead of the next expected number: something in between is missing.
    Gap { expected: u64 },
}

/// Decides how to treat envelope `seq` given the last accepted one (`None` = none yet).
pub fn check_sequence(last_accepted: Option<u64>, seq: u64) -> SequenceVerdict {
    let expected = last_accepted.map_or(1, |l| l.saturating_add(1));
    if seq == expected {
        SequenceVerdict::Next
    } else if seq < expected {
        SequenceVerdict::AlreadySeen
    } else {
        SequenceVerdict::Gap { expected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_envelope_is_one() {
        assert_eq!(check_sequence(None, 1), SequenceVerdict::Next);
        assert_eq!(check_sequence(None, 0), SequenceVerdict::AlreadySeen);
        assert_eq!(
            check_sequence(None, 2),
            SequenceVerdict::Gap { expected: 1 }
        );
    }

    #[test]
    fn after_some() {
        assert_eq!(check_sequence(Some(5), 6), SequenceVerdict::Next);
        assert_eq!(check_sequence(Some(5), 5), SequenceVerdict::AlreadySeen);
        assert_eq!(check_sequence(Some(5), 1), SequenceVerdict::AlreadySeen);
        assert_eq!(
            check_sequence(Some(5), 9),
            SequenceVerdict::Gap { expected: 6 }
        );
    }
}
