//! Locating and running the real client tools the tests drive (skopeo,
//! oras, crane, regctl, cosign, the Python oras package, …): installed by
//! `tests/tools/install.sh`. A missing tool fails the test; it never skips.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one client command may run before the test fails.
const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// Locates a client tool: `$BERTH_<NAME>_BIN`, then `PATH`, then (for the
/// Go-built tools) the cache that tests/tools/install.sh fills. Panics with
/// instructions when it is nowhere: a missing tool is a failure, not a skip.
pub fn tool(name: &str) -> PathBuf {
    let env_var = format!("BERTH_{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&env_var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} does not exist (unset it or run tests/tools/install.sh)",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    if let Some(p) = cached_go_tool(name) {
        return p;
    }
    panic!(
        "required tool `{name}` was not found (looked at ${env_var}, PATH and the berth tool \
         cache). Install the test tools with `tests/tools/install.sh` (bash .ci/run does this), \
         then re-run; for oras, `eval \"$(tests/tools/install.sh --env)\"` puts it on PATH."
    );
}

/// The Python of the venv that holds the `oras` package:
/// `$BERTH_PYTHON_ORAS`, else `<tool cache>/python-oras-<version>/bin/python`.
pub fn python_oras() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_PYTHON_ORAS") {
        return PathBuf::from(p);
    }
    let p = tool_cache()
        .zip(pinned_version("PYTHON_ORAS"))
        .map(|(cache, v)| cache.join(format!("python-oras-{v}/bin/python")));
    match p {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "the Python oras package was not found: run tests/tools/install.sh (bash .ci/run does this)"
        ),
    }
}

fn tool_cache() -> Option<PathBuf> {
    match std::env::var_os("BERTH_TOOL_CACHE") {
        Some(c) => Some(PathBuf::from(c)),
        None => Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/berth-tools")),
    }
}

/// `<NAME>_VERSION` from tests/tools/versions.env.
fn pinned_version(name: &str) -> Option<String> {
    let versions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/versions.env");
    let text = std::fs::read_to_string(versions).ok()?;
    let key = format!("{name}_VERSION=");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&key))
        .map(|v| v.trim().to_string())
}

/// `${BERTH_TOOL_CACHE:-$HOME/.cache/berth-tools}/<name>-<version>/<name>`, with
/// the version read from tests/tools/versions.env (`ORAS_VERSION=...`).
fn cached_go_tool(name: &str) -> Option<PathBuf> {
    let version = pinned_version(&name.to_uppercase())?;
    let p = tool_cache()?.join(format!("{name}-{version}")).join(name);
    p.is_file().then_some(p)
}

/// Runs `name args...` in `cwd`, fails the test (with the command, exit
/// status, stdout and stderr) unless it exits 0 within TOOL_TIMEOUT, and
/// returns its stdout.
pub fn run<I, S>(cwd: &Path, name: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(cwd, name, args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_with<I, S>(cwd: &Path, name: &str, args: I, envs: &[(&str, &str)]) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run_unchecked(cwd, name, args, envs);
    match out.status {
        Some(s) if s.success() => out.stdout,
        other => panic!(
            "`{}` (in {}) {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.shown,
            cwd.display(),
            match other {
                Some(s) => format!("failed: {s}"),
                None => format!("timed out after {TOOL_TIMEOUT:?}"),
            },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What a tool run did.
pub struct Ran {
    /// The command line, for messages.
    pub shown: String,
    /// None: killed after TOOL_TIMEOUT.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `name args...` in `cwd` (killed after TOOL_TIMEOUT), whatever
/// its exit status: for tests of what a client refuses.
pub fn run_unchecked<I, S>(cwd: &Path, name: &str, args: I, envs: &[(&str, &str)]) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = if name == "python-oras" {
        python_oras()
    } else {
        tool(name)
    };
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = format!(
        "{name} {}",
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = Command::new(&bin)
        .args(&args)
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{shown}` ({}): {e}", bin.display()));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ran {
        shown,
        status,
        stdout,
        stderr,
    }
}
