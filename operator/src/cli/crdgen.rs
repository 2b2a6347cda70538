//! `berth-operator crdgen`: the CRD YAML files, generated from the types.

use std::path::{Path, PathBuf};

use crate::crd::crd_files;

#[derive(Debug, thiserror::Error)]
pub enum CrdgenError {
    #[error("cannot serialise the CRDs: {0}")]
    Serialise(#[from] serde_yaml::Error),
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes every CRD file into each of `dirs`, saying what it wrote.
pub fn write(dirs: &[PathBuf]) -> Result<(), CrdgenError> {
    let files = crd_files()?;
    for dir in dirs {
        write_into(dir, &files)?;
    }
    Ok(())
}

fn write_into(dir: &Path, files: &[(&str, String)]) -> Result<(), CrdgenError> {
    std::fs::create_dir_all(dir).map_err(|source| CrdgenError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, yaml) in files {
        let path = dir.join(name);
        std::fs::write(&path, yaml).map_err(|source| CrdgenError::Write {
            path: path.clone(),
            source,
        })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
