use std::path::{Path, PathBuf};

/// A file of the contract that cannot be read, or whose content is wrong;
/// the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: field `{field}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl FileError {
    pub fn invalid(path: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        FileError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads `path` and parses it as YAML into `T`; an empty file is `T::default()`.
pub(crate) fn load_yaml<T>(path: &Path) -> Result<T, FileError>
where
    T: serde::de::DeserializeOwned + Default,
{
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_yaml(&text, path)
}

/// Parses YAML into `T`, naming the field that is wrong; an empty text is
/// `T::default()`.
pub(crate) fn parse_yaml<T>(text: &str, path: &Path) -> Result<T, FileError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde_yaml starts some messages with the path itself.
        let message = message
            .strip_prefix(&format!("{field}: "))
            .map(str::to_string)
            .unwrap_or(message);
        let field = if field == "." {
            "(top level)".to_string()
        } else {
            field
        };
        FileError::invalid(path, field, message)
    })
}
