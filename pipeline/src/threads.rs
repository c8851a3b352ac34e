//! How many worker threads a job may ask for. More threads than cores only adds memory (each
//! decode thread holds an image in flight) and start-up time: `--threads 100000` once ran for
//! minutes before doing any work. The bound is generous (four per core, at least 16), so
//! oversubscribing to hide I/O still works.

/// Cores this process may use (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most threads a job may ask for on this machine.
pub fn max_threads() -> usize {
    (4 * cores()).max(16)
}

/// `requested` threads (0: all cores), or an error naming `flag` and what is allowed.
pub fn resolve(flag: &str, requested: usize) -> Result<usize, String> {
    let max = max_threads();
    match requested {
        0 => Ok(cores()),
        n if n <= max => Ok(n),
        n => Err(format!(
            "{flag} {n}: must be at most {max} (4 per core on this machine's {} cores, at \
             least 16); 0 uses every core",
            cores()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_bounded() {
        assert_eq!(resolve("--threads", 0).unwrap(), cores());
        assert_eq!(resolve("--threads", 3).unwrap(), 3);
        let e = resolve("--threads", 100_000).unwrap_err();
        assert!(
            e.contains("--threads 100000") && e.contains("at most"),
            "{e}"
        );
    }
}
