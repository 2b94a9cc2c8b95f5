//! Finding server binaries.

use std::path::{Path, PathBuf};

use super::{HarnessError, Result};

/// Finds `name` in `$env_var`, then in `dirs`, then on PATH.
pub(crate) fn find(
    name: &str,
    env_var: &'static str,
    dirs: &[PathBuf],
    package: &'static str,
) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(env_var) {
        candidates.push(PathBuf::from(dir));
    }
    candidates.extend(dirs.iter().cloned());
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for dir in &candidates {
        let program = dir.join(name);
        if is_executable(&program) {
            return Ok(program);
        }
    }
    Err(HarnessError::MissingBinary {
        binary: name.to_string(),
        looked_in: candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        package,
        env_var,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// PostgreSQL's binary directories under `/usr/lib/postgresql`, newest first.
pub(crate) fn postgres_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_package() {
        let e = find(
            "surely-not-a-server-binary",
            "SPAR_TEST_NO_SUCH_VAR",
            &[],
            "postgresql",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("`surely-not-a-server-binary` not found"), "{e}");
        assert!(
            e.contains("install the `postgresql` package") && e.contains("SPAR_TEST_NO_SUCH_VAR"),
            "{e}"
        );
    }
}
