//! The compiled peers: `go-pgx` built with Debian's Go and pgx, `spring-jdbc` compiled against
//! Debian's Spring, Jetty, HikariCP, pgjdbc and Jackson jars, each into `.bakeoff/peers/<peer>/`
//! beside the Python environment. Nothing comes from a module proxy or a Maven repository: what a
//! peer needs from Debian is listed in its folder's `debian.txt` (which `.ci/run` reads too), and
//! a missing package stops the build with the `apt-get install` line that fixes it.
//!
//! A build is redone when the peer's sources, its `debian.txt` or the contract's document
//! changed since the last one (a stamp of their contents), so a test never runs a stale program.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where Debian installs the Java libraries.
const DEBIAN_JARS: &str = "/usr/share/java";
/// Where Debian installs Go packages' sources: the GOPATH of a build.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";
/// The stamp of the sources a build was made from.
const STAMP: &str = ".bakeoff-built";

/// One line of a peer's `debian.txt`: something on the machine and the package that installs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianNeed {
    pub kind: NeedKind,
    pub package: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeedKind {
    /// A program on PATH.
    Program(String),
    /// A file or folder.
    Path(PathBuf),
    /// A jar under /usr/share/java, by its name without `.jar`; in classpath order.
    Jar(String),
}

impl DebianNeed {
    fn is_present(&self) -> bool {
        match &self.kind {
            NeedKind::Program(name) => which(name).is_some(),
            NeedKind::Path(path) => path.exists(),
            NeedKind::Jar(name) => jar_path(name).is_file(),
        }
    }
}

fn jar_path(name: &str) -> PathBuf {
    Path::new(DEBIAN_JARS).join(format!("{name}.jar"))
}

/// Reads a `debian.txt`: `KIND WHAT PACKAGE` per line, `#` comments.
pub fn parse_needs(text: &str) -> Result<Vec<DebianNeed>> {
    let mut needs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [kind, what, package] = fields[..] else {
            bail!(
                "line {}: expected KIND WHAT PACKAGE, got {line:?}",
                number + 1
            );
        };
        let kind = match kind {
            "program" => NeedKind::Program(what.to_string()),
            "path" => NeedKind::Path(PathBuf::from(what)),
            "jar" => NeedKind::Jar(what.to_string()),
            other => bail!("line {}: {other:?} is not program, path or jar", number + 1),
        };
        needs.push(DebianNeed {
            kind,
            package: package.to_string(),
        });
    }
    Ok(needs)
}

/// The needs of the peer in `folder`.
pub fn needs_of(folder: &Path) -> Result<Vec<DebianNeed>> {
    let path = folder.join("debian.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_needs(&text).with_context(|| format!("in {}", path.display()))
}

/// The packages of `needs` whose file or program is missing, each once, in order.
pub fn missing_packages(needs: &[DebianNeed]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for need in needs {
        if !need.is_present() && !missing.contains(&need.package) {
            missing.push(need.package.clone());
        }
    }
    missing
}

/// An error naming the packages to install, or `Ok` when none is missing.
pub fn require_packages(missing: &[String], for_what: &str) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "{for_what} needs Debian packages that are not installed; install them with:\n  apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    )
}

/// What a build of one peer works from and where it goes.
pub struct BuildPlan<'a> {
    /// The peer's name: the program's or jar's name.
    pub name: &'a str,
    /// Its folder under `peers/`.
    pub source: &'a Path,
    /// The contract's document, built into the program.
    pub openapi: &'a Path,
    /// `.bakeoff/peers/<peer>`.
    pub output: &'a Path,
}

impl BuildPlan<'_> {
    /// A fingerprint of everything the build reads from the repository.
    fn stamp(&self, sources: &[PathBuf]) -> Result<String> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for path in sources
            .iter()
            .chain([self.openapi.to_path_buf(), self.source.join("debian.txt")].iter())
        {
            path.hash(&mut hasher);
            std::fs::read(path)
                .with_context(|| format!("reading {}", path.display()))?
                .hash(&mut hasher);
        }
        Ok(format!("{:016x}", hasher.finish()))
    }

    /// Whether the last build was made from these very sources.
    fn is_current(&self, stamp: &str, product: &Path) -> bool {
        product.is_file()
            && std::fs::read_to_string(self.output.join(STAMP)).is_ok_and(|saved| saved == stamp)
    }

    fn record(&self, stamp: &str) -> Result<()> {
        std::fs::write(self.output.join(STAMP), stamp)
            .with_context(|| format!("writing {}", self.output.join(STAMP).display()))
    }

    /// Holds the build lock of this peer (tests start peers in parallel; the next one finds the
    /// build done).
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>> {
        std::fs::create_dir_all(self.output)
            .with_context(|| format!("creating {}", self.output.display()))?;
        let file = std::fs::File::create(self.output.with_extension("lock"))
            .with_context(|| format!("creating the lock beside {}", self.output.display()))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, error)| anyhow::anyhow!("locking the build of {}: {error}", self.name))
    }
}

/// The files of `folder` (recursively) whose name ends with `.extension`, sorted.
fn files_with_extension(folder: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory)
            .with_context(|| format!("listing {}", directory.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|found| found == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A folder emptied and made again.
fn fresh_directory(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// Runs a build tool; its output is shown only when it fails.
fn run_tool(mut command: Command, what: &str) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Builds a Go peer (when its sources changed) and returns its program.
///
/// GOPATH mode over Debian's `/usr/share/gocode`, the module proxy off: every import resolves to
/// a Debian package's folder, nothing is downloaded. The sources are copied into a build folder
/// beside the contract's document, which the program embeds (`go:embed` reads only below the
/// package's folder).
pub fn build_go(plan: &BuildPlan<'_>, force: bool) -> Result<PathBuf> {
    let _lock = plan.lock()?;
    let sources = files_with_extension(plan.source, "go")?;
    let stamp = plan.stamp(&sources)?;
    let program = plan.output.join(plan.name);
    if !force && plan.is_current(&stamp, &program) {
        return Ok(program);
    }
    require_packages(&missing_packages(&needs_of(plan.source)?), plan.name)?;
    eprintln!("peers: building {} with Go (Debian's packages)", plan.name);
    let staging = plan.output.join("src");
    fresh_directory(&staging)?;
    for source in &sources {
        let name = source.file_name().context("a source without a name")?;
        std::fs::copy(source, staging.join(name))
            .with_context(|| format!("copying {}", source.display()))?;
    }
    std::fs::copy(plan.openapi, staging.join("openapi.json"))
        .with_context(|| format!("copying {}", plan.openapi.display()))?;
    let mut command = Command::new("go");
    command
        .current_dir(&staging)
        .args(["build", "-trimpath", "-o"])
        .arg(&program)
        .arg(".")
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        // Pure Go (its own DNS resolver): no C compiler needed, one static program.
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", plan.output.join("go-cache"));
    run_tool(command, "go build")?;
    plan.record(&stamp)?;
    Ok(program)
}

/// Compiles a Java peer (when its sources changed) into a jar and returns the jar.
///
/// `javac` over the peer's `src/main/java` with Debian's jars (its `debian.txt`, in order) on the
/// classpath; the contract's document goes into the jar as a resource; the manifest names the
/// main class and, as Debian's own Java programs do, the jars by their absolute paths, so that
/// `java -jar` is the whole command line.
pub fn build_java(plan: &BuildPlan<'_>, main_class: &str, force: bool) -> Result<PathBuf> {
    let _lock = plan.lock()?;
    let sources = files_with_extension(&plan.source.join("src/main/java"), "java")?;
    let stamp = plan.stamp(&sources)?;
    let jar = plan.output.join(format!("{}.jar", plan.name));
    // Checked even when the jar is current: its classpath is Debian's jars, at run time too.
    let needs = needs_of(plan.source)?;
    require_packages(&missing_packages(&needs), plan.name)?;
    if !force && plan.is_current(&stamp, &jar) {
        return Ok(jar);
    }
    eprintln!("peers: compiling {} with javac (Debian's jars)", plan.name);
    let classpath: Vec<PathBuf> = needs
        .iter()
        .filter_map(|need| match &need.kind {
            NeedKind::Jar(name) => Some(jar_path(name)),
            _ => None,
        })
        .collect();
    let classes = plan.output.join("classes");
    fresh_directory(&classes)?;
    let mut command = Command::new("javac");
    command
        .args(["-encoding", "UTF-8", "-nowarn", "-d"])
        .arg(&classes)
        .arg("-cp")
        .arg(std::env::join_paths(&classpath).context("a jar path with a colon")?)
        .args(&sources);
    run_tool(command, "javac")?;
    std::fs::copy(plan.openapi, classes.join("openapi.json"))
        .with_context(|| format!("copying {}", plan.openapi.display()))?;
    let manifest = plan.output.join("MANIFEST.MF");
    std::fs::write(&manifest, manifest_text(main_class, &classpath))
        .with_context(|| format!("writing {}", manifest.display()))?;
    let mut command = Command::new("jar");
    command
        .args(["--create", "--file"])
        .arg(&jar)
        .arg("--manifest")
        .arg(&manifest)
        .arg("-C")
        .arg(&classes)
        .arg(".");
    run_tool(command, "jar")?;
    plan.record(&stamp)?;
    Ok(jar)
}

/// A jar manifest with `Main-Class` and `Class-Path`, its lines folded at 72 bytes as the jar
/// specification asks (a continuation line starts with a space).
pub fn manifest_text(main_class: &str, classpath: &[PathBuf]) -> String {
    let entries: Vec<String> = classpath
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let mut text = String::from("Manifest-Version: 1.0\n");
    for line in [
        format!("Main-Class: {main_class}"),
        format!("Class-Path: {}", entries.join(" ")),
    ] {
        let mut rest = line.as_str();
        let mut first = true;
        while !rest.is_empty() {
            let room = if first { 72 } else { 71 };
            let split = floor_char_boundary(rest, room);
            let _ = writeln!(text, "{}{}", if first { "" } else { " " }, &rest[..split]);
            rest = &rest[split..];
            first = false;
        }
    }
    text
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

/// `java`'s command line for a jar built by [`build_java`].
pub fn java_arguments(jar: &Path) -> Vec<OsString> {
    vec![OsString::from("-jar"), jar.as_os_str().to_os_string()]
}

/// A program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|directory| Path::new(directory).join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_lists_read_and_refuse_what_they_cannot() {
        let needs = parse_needs(
            "# a comment\nprogram go golang-go\n\npath /usr/share/x pkg-x\njar HikariCP libhikaricp-java\n",
        )
        .unwrap();
        assert_eq!(
            needs,
            [
                DebianNeed {
                    kind: NeedKind::Program("go".into()),
                    package: "golang-go".into()
                },
                DebianNeed {
                    kind: NeedKind::Path("/usr/share/x".into()),
                    package: "pkg-x".into()
                },
                DebianNeed {
                    kind: NeedKind::Jar("HikariCP".into()),
                    package: "libhikaricp-java".into()
                },
            ]
        );
        assert!(parse_needs("program go").is_err());
        assert!(parse_needs("library x y").is_err());
    }

    #[test]
    fn missing_packages_are_named_once_in_an_apt_get_line() {
        let needs = parse_needs(
            "path /nonexistent/a pkg-a\npath /nonexistent/b pkg-a\npath / present\npath /nonexistent/c pkg-c\n",
        )
        .unwrap();
        let missing = missing_packages(&needs);
        assert_eq!(missing, ["pkg-a", "pkg-c"]);
        let error = require_packages(&missing, "peer-x")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("apt-get install -y --no-install-recommends pkg-a pkg-c"),
            "{error}"
        );
        assert!(require_packages(&[], "peer-x").is_ok());
    }

    #[test]
    fn manifest_lines_fold_at_72_bytes() {
        let classpath: Vec<PathBuf> = (0..6)
            .map(|index| PathBuf::from(format!("/usr/share/java/library-number-{index}.jar")))
            .collect();
        let text = manifest_text("example.Main", &classpath);
        assert!(text.starts_with("Manifest-Version: 1.0\nMain-Class: example.Main\nClass-Path: /usr/share/java/library-number-0.jar /usr/"));
        assert!(text.lines().all(|line| line.len() <= 72), "{text}");
        // Unfolded, the entries are the classpath again.
        let unfolded = text.replace("\n ", "");
        let class_path = unfolded
            .lines()
            .find_map(|line| line.strip_prefix("Class-Path: "))
            .unwrap();
        assert_eq!(class_path.split(' ').count(), 6);
        assert!(class_path.ends_with("/usr/share/java/library-number-5.jar"));
    }
}
