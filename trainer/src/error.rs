//! The trainer library's typed errors (the binary adds context with anyhow).

use std::path::PathBuf;

/// Saved training state that does not fit the live tensors it is restored into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{what} has no `{key}`")]
    Missing { what: &'static str, key: String },
    #[error("{what}: `{key}` is {got:?}, expected {want:?}")]
    Shape {
        what: &'static str,
        key: String,
        got: Vec<i64>,
        want: Vec<i64>,
    },
    #[error("{what} has `{key}`, which is not a parameter here")]
    Unexpected { what: &'static str, key: String },
}

/// A training or model config that cannot be used; the message names the key and the
/// allowed values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not TOML/JSON of the expected shape (the parser's message names the key).
    #[error("{0}")]
    Parse(String),
    /// Parsed, but a value is outside what the model or loop accepts.
    #[error("{0}")]
    Invalid(String),
    /// One of the above, or an I/O error, in a file.
    #[error("{}: {message}", path.display())]
    InFile { path: PathBuf, message: String },
}

impl ConfigError {
    pub fn in_file(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ConfigError::InFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
