//! `wasmray plugin new`: a plugin crate from the template in `plugins/template`.

use std::path::{Path, PathBuf};

use crate::runtime::PluginKind;

const CARGO_TOML: &str = include_str!("../../../plugins/template/Cargo.toml.tmpl");
const BATCH_SCHEDULER: &str = include_str!("../../../plugins/template/batch-scheduler.rs.tmpl");
const UPGRADE_STRATEGY: &str = include_str!("../../../plugins/template/upgrade-strategy.rs.tmpl");
const CARGO_CONFIG: &str = include_str!("../../../plugins/template/cargo-config.toml.tmpl");
/// Where the SDK was when this binary was built; used unless the caller names another.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/sdk");

/// Why a plugin crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not usable as a crate name.
    #[error("`{0}` is not a valid plugin name: use lowercase letters, digits and dashes, starting with a letter")]
    InvalidName(String),
    /// Reconcilers are built into wasmray, not scaffolded.
    #[error("there is no template for {0} plugins; use batch-scheduler or upgrade-strategy")]
    NoTemplate(PluginKind),
    /// The target directory is taken.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// The guest SDK could not be found.
    #[error("the wasmray guest SDK is not at {}; pass its path", .0.display())]
    NoSdk(PathBuf),
    /// Writing the files failed.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Creates `dir/name` with a plugin crate of `kind` and returns its path.
pub fn new_plugin(name: &str, kind: PluginKind, dir: &Path, sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::InvalidName(name.into()));
    }
    let lib = match kind {
        PluginKind::BatchScheduler => BATCH_SCHEDULER,
        PluginKind::UpgradeStrategy => UPGRADE_STRATEGY,
        PluginKind::Reconciler => return Err(ScaffoldError::NoTemplate(kind)),
    };
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(BUILT_SDK));
    let sdk = sdk.canonicalize().map_err(|_| ScaffoldError::NoSdk(sdk.clone()))?;
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    std::fs::create_dir_all(dir).map_err(|source| ScaffoldError::Write { path: dir.into(), source })?;
    let root_abs = dir.canonicalize().map_err(|source| ScaffoldError::Write { path: dir.into(), source })?.join(name);
    let sdk_path = sdk_reference(&root_abs, &sdk);
    let render = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{kind}}", kind.world())
            .replace("{{sdk_path}}", &sdk_path.display().to_string())
    };
    let write = |path: PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().expect("files are inside the root"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| ScaffoldError::Write { path, source })
    };
    write(root.join("Cargo.toml"), render(CARGO_TOML))?;
    write(root.join("src/lib.rs"), render(lib))?;
    write(root.join(".cargo/config.toml"), CARGO_CONFIG.into())?;
    write(root.join(".gitignore"), "/target\n".into())?;
    Ok(root)
}

/// How the new crate's `Cargo.toml` names the SDK: relative to the crate when both are inside
/// one checkout (the nearest directory above the SDK with a `Cargo.lock`), so the checkout can
/// be moved or cloned elsewhere; absolute otherwise, since a relative path out of an unrelated
/// directory breaks as soon as either moves. Both paths are absolute and canonical.
fn sdk_reference(crate_root: &Path, sdk: &Path) -> PathBuf {
    let checkout = sdk.ancestors().skip(1).find(|dir| dir.join("Cargo.lock").is_file());
    match checkout {
        Some(checkout) if crate_root.starts_with(checkout) => relative(crate_root, sdk),
        _ => sdk.to_path_buf(),
    }
}

/// `to` as seen from the directory `from`; both absolute.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    let up = from.components().skip(common).map(|_| std::path::Component::ParentDir);
    up.chain(to.components().skip(common)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_the_checkout_the_sdk_is_named_relative_to_the_new_crate() {
        let sdk = Path::new(BUILT_SDK).canonicalize().unwrap();
        let checkout = sdk.parent().unwrap().parent().unwrap();
        assert_eq!(sdk_reference(&checkout.join("plugins/gang"), &sdk), Path::new("../../guests/sdk"));
        assert_eq!(sdk_reference(&checkout.join("gang"), &sdk), Path::new("../guests/sdk"));
    }

    #[test]
    fn outside_the_checkout_the_sdk_is_named_by_its_absolute_path() {
        let sdk = Path::new(BUILT_SDK).canonicalize().unwrap();
        assert_eq!(sdk_reference(Path::new("/elsewhere/gang"), &sdk), sdk);
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/d")), Path::new("../../d"));
        assert_eq!(relative(Path::new("/a"), Path::new("/a/d/e")), Path::new("d/e"));
    }
}
