//! One line for a command's final error, as both binaries print it: the error and its
//! causes joined by `: `, leaving out a cause whose text the line already holds (typed
//! errors often put their source's message in their own, so `{:#}` would repeat it).

/// `error: cause: cause`, each cause once.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("queue /q: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("opening the queue")]
    struct Adds {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let gone = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            super::one_line(&Repeats { source: gone() }),
            "queue /q: no such file"
        );
        assert_eq!(
            super::one_line(&Adds { source: gone() }),
            "opening the queue: no such file"
        );
    }
}
