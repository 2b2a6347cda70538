//! The rules of the registry, between the HTTP handlers and the stores:
//! what a push, a pull and a delete do, in which order, and what they
//! refuse. Nothing here knows HTTP; nothing here writes SQL or paths.
//!
//! [`Registry`] holds the stores and the per-repository settings;
//! [`Registry::repository`] gives a [`Repository`], the context of one
//! request: its name and its settings, resolved once. The operations are
//! methods of it, one file per area: [`uploads`], [`manifests`], [`blobs`],
//! [`listings`], [`sif`] (SIF images described), [`library`] (what
//! `library://` clients need); [`publish`] is the protocol that makes a
//! blob visible while gc may run elsewhere; [`mirrored`] serves a mirror's
//! repositories from the cache or its upstream.

pub mod blobs;
pub mod browse;
mod error;
pub mod library;
pub mod listings;
pub mod manifests;
pub mod mirrored;
pub mod publish;
pub mod sif;
pub mod uploads;

use std::sync::Arc;

use bytes::Bytes;

pub use error::ServiceError;

use crate::meta::MetaStore;
use crate::mirror::{Mirror, Mirrors};
use crate::settings::{Settings, SettingsSource};
use crate::storage::{BlobStore, BodyStream};

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The registry's stores and settings.
pub struct Registry {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub settings: SettingsSource,
    /// Upstreams whose content is served from repositories `<name>/…`.
    pub mirrors: Mirrors,
}

impl Registry {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        settings: SettingsSource,
        mirrors: Mirrors,
    ) -> Self {
        Self {
            meta,
            blobs,
            settings,
            mirrors,
        }
    }

    /// Repository `name` (already checked against the name grammar), with
    /// its settings.
    pub fn repository<'a>(&'a self, name: &'a str) -> Repository<'a> {
        Repository {
            registry: self,
            name,
            settings: self.settings.for_repository(name),
            mirror: self.mirrors.of_repository(name),
        }
    }
}

/// One repository, for the length of a request.
pub struct Repository<'a> {
    pub registry: &'a Registry,
    pub name: &'a str,
    /// Quotas, immutable tags and retention that apply to it.
    pub settings: Settings,
    /// The mirror it is in, and its name upstream.
    pub mirror: Option<(Arc<Mirror>, &'a str)>,
}

impl Repository<'_> {
    fn meta(&self) -> &dyn MetaStore {
        self.registry.meta.as_ref()
    }

    fn blobs(&self) -> &dyn BlobStore {
        self.registry.blobs.as_ref()
    }
}

/// A request body, as the services take it.
pub struct Body {
    pub stream: BodyStream,
    /// The announced length (`Content-Length`), if any.
    pub length: Option<u64>,
}

impl Body {
    /// Reads the whole body if it is announced and at most `limit` bytes;
    /// Err(self) otherwise. An announced length the body does not have is
    /// SizeInvalid.
    async fn read_small(mut self, limit: usize) -> Result<Result<Bytes, Body>> {
        use futures::StreamExt;
        let Some(len) = self.length.filter(|l| *l <= limit as u64) else {
            return Ok(Err(self));
        };
        let mut data = Vec::with_capacity(len as usize);
        while let Some(chunk) = self.stream.next().await {
            let chunk = chunk.map_err(|e| ServiceError::BodyUnreadable(e.to_string()))?;
            if data.len() + chunk.len() > len as usize {
                return Err(ServiceError::LengthMismatch {
                    announced: len,
                    got: (data.len() + chunk.len()) as u64,
                });
            }
            data.extend_from_slice(&chunk);
        }
        if data.len() as u64 != len {
            return Err(ServiceError::LengthMismatch {
                announced: len,
                got: data.len() as u64,
            });
        }
        Ok(Ok(data.into()))
    }
}
