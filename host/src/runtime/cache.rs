//! Compiled components, cached on disk by (component sha256, engine compatibility hash).

use std::{
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use wasmtime::{Engine, component::Component};

use super::{PluginId, Result, RuntimeError};

/// How a component came to be ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from the wasm bytes now (and written to the cache, if there is one).
    Compiled,
    /// Loaded from a precompiled artifact in the cache.
    Cached,
}

/// A directory of precompiled artifacts, or none.
///
/// A directory that cannot be created or written (a read-only root filesystem, no volume
/// mounted) is no reason not to run: components are then compiled in memory on every load, and
/// that is logged once.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    /// Distinguishes engines (wasmtime version and the codegen settings) sharing one directory.
    engine_key: String,
    /// Whether a failed write has been logged already.
    warned: AtomicBool,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self> {
        let dir = dir.filter(|dir| match writable(dir) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "The compile cache directory is not writable; compiling components in memory");
                false
            }
        });
        // `DefaultHasher::new()` has fixed keys, so the key is stable for one build of the binary,
        // which is all a cache needs; a different build that happens to collide still fails
        // safely, because deserialisation checks compatibility itself.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache { dir, engine_key: format!("{:016x}", hasher.finish()), warned: AtomicBool::new(false) })
    }

    /// The component for these bytes: from the cache if present and valid, compiled otherwise.
    pub(crate) fn load(&self, engine: &Engine, id: &PluginId, wasm: &[u8]) -> Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, id, wasm)?, Origin::Compiled));
        };
        let path = dir.join(format!("{}-{}.cwasm", id.digest, self.engine_key));
        if path.exists()
            && let Some(component) = mapped(engine, &path)
        {
            return Ok((component, Origin::Cached));
        }
        let component = compile(engine, id, wasm)?;
        let bytes = component
            .serialize()
            .map_err(|e| RuntimeError::Compile { plugin: id.clone(), message: format!("{e:#}") })?;
        let stored = tempfile::NamedTempFile::new_in(dir)
            .and_then(|tmp| std::fs::write(tmp.path(), &bytes).map(|()| tmp))
            .and_then(|tmp| tmp.persist(&path).map_err(|e| e.error));
        // The directory was writable at start; if it no longer is (full, remounted), the
        // component compiled in memory serves all the same.
        if let Err(error) = stored {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(path = %path.display(), %error, "Cannot store a precompiled component; compiling in memory when this one is loaded again");
            }
            return Ok((component, Origin::Compiled));
        }
        // Served from the file just written, as a warm start would be: its code is then mapped
        // from the file (clean pages the kernel can share and reclaim) instead of held in this
        // process's heap, 4-6 MB per built-in reconciler that a cold start would otherwise keep.
        drop((component, bytes));
        let component = match mapped(engine, &path) {
            Some(component) => component,
            None => compile(engine, id, wasm)?,
        };
        crate::memory::release_freed_memory();
        Ok((component, Origin::Compiled))
    }
}

/// The component of a cache entry, mapped from its file; `None`, and the entry removed, if
/// wasmtime refuses it.
fn mapped(engine: &Engine, path: &Path) -> Option<Component> {
    // SAFETY: the file is our own cache entry: written by `Component::serialize` of this engine
    // configuration (the engine hash is in its name), atomically renamed into place, and named
    // by the sha256 of the wasm it was compiled from. wasmtime also checks the header for
    // version and configuration compatibility.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize_file(engine, path) };
    match loaded {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "Discarding unusable precompiled component");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Creates `dir` if needed and checks that a file can be created in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::NamedTempFile::new_in(dir).map(drop)
}

fn compile(engine: &Engine, id: &PluginId, wasm: &[u8]) -> Result<Component> {
    let compiled = Component::new(engine, wasm).map_err(|e| RuntimeError::Compile { plugin: id.clone(), message: format!("{e:#}") });
    crate::memory::release_freed_memory();
    compiled
}
