//! Compiled components, cached on disk by (component sha256, engine compatibility hash).

use std::{
    hash::{Hash as _, Hasher as _},
    path::PathBuf,
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
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    /// Distinguishes engines (wasmtime version and the codegen settings) sharing one directory.
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Cache { path: dir.clone(), source })?;
        }
        // `DefaultHasher::new()` has fixed keys, so the key is stable for one build of the binary,
        // which is all a cache needs; a different build that happens to collide still fails
        // safely, because deserialisation checks compatibility itself.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache { dir, engine_key: format!("{:016x}", hasher.finish()) })
    }

    /// The component for these bytes: from the cache if present and valid, compiled otherwise.
    pub(crate) fn load(&self, engine: &Engine, id: &PluginId, wasm: &[u8]) -> Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, id, wasm)?, Origin::Compiled));
        };
        let path = dir.join(format!("{}-{}.cwasm", id.digest, self.engine_key));
        if path.exists() {
            // SAFETY: the file is our own cache entry: written by `Component::serialize` of this
            // engine configuration (the engine hash is in its name), atomically renamed into
            // place, and named by the sha256 of the wasm it was compiled from. wasmtime also
            // checks the header for version and configuration compatibility.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "Discarding unusable precompiled component");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, id, wasm)?;
        let bytes = component
            .serialize()
            .map_err(|e| RuntimeError::Compile { plugin: id.clone(), message: format!("{e:#}") })?;
        let io = |source| RuntimeError::Cache { path: path.clone(), source };
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::fs::write(tmp.path(), &bytes).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok((component, Origin::Compiled))
    }
}

fn compile(engine: &Engine, id: &PluginId, wasm: &[u8]) -> Result<Component> {
    Component::new(engine, wasm).map_err(|e| RuntimeError::Compile { plugin: id.clone(), message: format!("{e:#}") })
}
