//! The Docker setup, checked without a Docker engine: docker/Dockerfile and docker/compose.yaml
//! are parsed and compared with the workspace. Every server package needs a runtime target and a
//! compose service; the services must share limits and environment, and that environment must be
//! exactly the variables the servers read (`bakeoff_core::config::ENV_VARS`).
//!
//! Each check returns the problems it found as sentences, so that a failure says what drifted;
//! `checks_catch_drift` feeds the checks broken copies of the files to show that they would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bakeoff::harness::servers::TargetSpec;
use bakeoff::results::vocabulary::{Peer, Scenario, Variant};
use bakeoff_core::DbRecycle;
use bakeoff_core::config::ENV_VARS;
use bakeoff_testkit::postgres::APP_ROLE;
use yaml_rust2::{Yaml, YamlLoader};

/// The package whose image runs the seeder and the benchmark.
const TOOL: &str = "bakeoff";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

// ---- The workspace -----------------------------------------------------------------------------

/// What the checks need to know about the workspace.
#[derive(Debug)]
struct Workspace {
    /// Packages with a binary, other than the tool: the servers.
    servers: BTreeSet<String>,
    /// Each member's top-level folder in the repository (`crates`, `bench`), and that of every
    /// crate the root manifest's `[patch]` takes from a path (`third_party`).
    member_folders: BTreeSet<String>,
    /// The workspace's minimum Rust version, as (major, minor).
    rust_version: (u32, u32),
    /// For each binary that is built (release or debug), whether it links libpq.
    links_libpq: BTreeMap<String, bool>,
}

impl Workspace {
    /// Asks cargo, the authority on what the members are.
    fn load() -> Workspace {
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--no-deps", "--offline", "--format-version=1"])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cargo metadata: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let root = root();
        let mut workspace = Workspace {
            servers: BTreeSet::new(),
            member_folders: BTreeSet::new(),
            rust_version: (0, 0),
            links_libpq: BTreeMap::new(),
        };
        for package in metadata["packages"].as_array().unwrap() {
            let name = package["name"].as_str().unwrap();
            let has_binary = package["targets"].as_array().unwrap().iter().any(|target| {
                target["kind"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind == "bin")
            });
            if has_binary && name != TOOL {
                workspace.servers.insert(name.to_string());
            }
            if let Some(links) = has_binary.then(|| links_libpq(name)).flatten() {
                workspace.links_libpq.insert(name.to_string(), links);
            }
            let manifest = Path::new(package["manifest_path"].as_str().unwrap());
            let relative = manifest.strip_prefix(&root).unwrap();
            let folder = relative.components().next().unwrap();
            workspace
                .member_folders
                .insert(folder.as_os_str().to_string_lossy().into_owned());
            if let Some(version) = package["rust_version"].as_str() {
                workspace.rust_version = workspace.rust_version.max(major_minor(version).unwrap());
            }
        }
        workspace.member_folders.extend(patched_folders(
            &std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
        ));
        workspace
    }
}

/// The top-level folders of the `path = "..."` entries in a manifest's `[patch.*]` tables.
fn patched_folders(manifest: &str) -> BTreeSet<String> {
    let mut in_patch = false;
    let mut folders = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_patch = line.starts_with("[patch.");
            continue;
        }
        let path = line
            .split_once("path")
            .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
            .and_then(|rest| rest.trim_start().strip_prefix('"'))
            .and_then(|rest| rest.split(['"', '/']).next());
        if let (true, Some(folder)) = (in_patch, path) {
            folders.insert(folder.to_string());
        }
    }
    folders
}

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

// ---- The Dockerfile ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    arguments: String,
}

#[derive(Debug)]
struct Stage {
    /// The image or earlier stage after FROM, with ARG defaults substituted.
    base: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

#[derive(Debug)]
struct Dockerfile {
    stages: Vec<Stage>,
}

impl Dockerfile {
    /// Splits the file into stages of instructions: continuation lines joined, comments and
    /// blank lines dropped, `${ARG}` in FROM replaced by the global ARG defaults.
    fn parse(text: &str) -> Dockerfile {
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(start) => {
                    current.push_str(start);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        let mut arguments: BTreeMap<String, String> = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical.iter().filter(|line| !line.trim().is_empty()) {
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let instruction = Instruction {
                keyword: keyword.to_ascii_uppercase(),
                arguments: rest.trim().to_string(),
            };
            match (instruction.keyword.as_str(), stages.last_mut()) {
                ("FROM", _) => {
                    let words: Vec<&str> = instruction
                        .arguments
                        .split_whitespace()
                        .filter(|word| !word.starts_with("--"))
                        .collect();
                    let name = match words.as_slice() {
                        [_, alias, name] if alias.eq_ignore_ascii_case("AS") => {
                            Some(name.to_string())
                        }
                        _ => None,
                    };
                    stages.push(Stage {
                        base: substitute(words.first().copied().unwrap_or_default(), &arguments),
                        name,
                        instructions: Vec::new(),
                    });
                }
                ("ARG", None) => {
                    if let Some((key, value)) = instruction.arguments.split_once('=') {
                        arguments.insert(key.trim().to_string(), value.trim().to_string());
                    }
                }
                (_, Some(stage)) => stage.instructions.push(instruction),
                (_, None) => {}
            }
        }
        Dockerfile { stages }
    }

    fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|stage| stage.name.as_deref() == Some(name))
    }

    /// The stage and the stages it is built FROM, nearest first, ending at an image.
    fn chain<'a>(&'a self, name: &str) -> Vec<&'a Stage> {
        let mut chain = Vec::new();
        let mut next = self.stage(name);
        while let Some(stage) = next {
            chain.push(stage);
            next = self
                .stage(&stage.base)
                .filter(|_| chain.len() < self.stages.len());
        }
        chain
    }

    /// The instructions a target runs, its bases' first.
    fn effective(&self, name: &str) -> Vec<Instruction> {
        self.chain(name)
            .iter()
            .rev()
            .flat_map(|stage| stage.instructions.iter().cloned())
            .collect()
    }
}

/// Replaces `${NAME}` and `$NAME` by the ARG defaults, which may name earlier ARGs themselves.
fn substitute(text: &str, arguments: &BTreeMap<String, String>) -> String {
    let mut result = text.to_string();
    for _ in 0..arguments.len().max(1) {
        let before = result.clone();
        for (name, value) in arguments {
            result = result
                .replace(&format!("${{{name}}}"), value)
                .replace(&format!("${name}"), value);
        }
        if result == before {
            break;
        }
    }
    result
}

/// The global ARGs of a Dockerfile (before its first FROM), their defaults substituted.
fn global_arguments(text: &str) -> BTreeMap<String, String> {
    let mut arguments = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            break;
        }
        if let Some((name, value)) = line
            .strip_prefix("ARG ")
            .and_then(|rest| rest.split_once('='))
        {
            arguments.insert(name.trim().to_string(), value.trim().to_string());
        }
    }
    let raw = arguments.clone();
    arguments
        .into_iter()
        .map(|(name, value)| (name, substitute(&value, &raw)))
        .collect()
}

/// What Compose makes of `${NAME:-default}` with NAME unset: the default (`${NAME}`: empty).
fn compose_default(text: &str) -> String {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        result.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        result.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[start + end + 1..];
    }
    result.push_str(rest);
    result
}

/// docker/Dockerfile as docker/bases.sh derives target/docker/Dockerfile.host from it: the lines
/// from `# ---- Build` up to `# ---- Runtime` replaced by docker/host-binaries.dockerfile.
fn host_dockerfile(dockerfile: &str, host_build: &str) -> String {
    let mut derived = String::new();
    let mut skipping = false;
    for line in dockerfile.lines() {
        if line.starts_with("# ---- Build ") {
            skipping = true;
            derived.push_str(host_build);
            continue;
        }
        if line.starts_with("# ---- Runtime ") {
            skipping = false;
        }
        if !skipping {
            derived.push_str(line);
            derived.push('\n');
        }
    }
    derived
}

/// A JSON array of strings (the exec form of ENTRYPOINT, CMD and HEALTHCHECK CMD).
fn exec_form(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

/// Whether the built binary (release or debug, if either exists) links libpq: whether the ELF
/// dynamic section's string table, which holds the DT_NEEDED library names, names libpq.so.5.
fn links_libpq(binary: &str) -> Option<bool> {
    let bytes = ["release", "debug"]
        .iter()
        .find_map(|profile| std::fs::read(root().join("target").join(profile).join(binary)).ok())?;
    let dynamic_strings = elf_dynamic_strings(&bytes)?;
    let needle = b"libpq.so.5\0";
    Some(
        dynamic_strings
            .windows(needle.len())
            .any(|window| window == needle),
    )
}

/// The string table of a 64-bit little-endian ELF file's dynamic section.
fn elf_dynamic_strings(bytes: &[u8]) -> Option<&[u8]> {
    const SHT_DYNAMIC: u32 = 6;
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let table = usize::try_from(u64_at(0x28)?).ok()?;
    let entry_size = usize::from(u16_at(0x3A)?);
    let count = usize::from(u16_at(0x3C)?);
    let section = |index: usize| table + index * entry_size;
    let dynamic = (0..count).find(|&index| u32_at(section(index) + 4) == Some(SHT_DYNAMIC))?;
    let strings = section(usize::try_from(u32_at(section(dynamic) + 0x28)?).ok()?);
    let offset = usize::try_from(u64_at(strings + 0x18)?).ok()?;
    let size = usize::try_from(u64_at(strings + 0x20)?).ok()?;
    bytes.get(offset..offset + size)
}

fn check_dockerfile(dockerfile: &Dockerfile, workspace: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let targets = workspace.servers.iter().map(String::as_str).chain([TOOL]);
    let mut build_stages = BTreeSet::new();
    for target in targets {
        let is_server = target != TOOL;
        if dockerfile.stage(target).is_none() {
            problems.push(format!("the Dockerfile has no stage `{target}` to build"));
            continue;
        }
        let chain = dockerfile.chain(target);
        let image = chain.last().map(|stage| stage.base.as_str()).unwrap_or("");
        if !(image.starts_with("debian:") && image.ends_with("-slim")) {
            problems.push(format!(
                "`{target}` runs on {image}, not a Debian slim image"
            ));
        }
        let instructions = dockerfile.effective(target);
        let last = |keyword: &str| {
            instructions
                .iter()
                .rev()
                .find(|instruction| instruction.keyword == keyword)
        };

        let user = last("USER").map(|user| user.arguments.split(':').next().unwrap_or("").trim());
        if matches!(user, None | Some("" | "0" | "root")) {
            problems.push(format!("`{target}` runs as root"));
        }

        let entrypoint = last("ENTRYPOINT").and_then(|entry| exec_form(&entry.arguments));
        let program = entrypoint.as_ref().and_then(|words| words.first());
        match program {
            Some(program) if program.ends_with(&format!("/{target}")) => {
                let binary = format!("/app/target/release/{target}");
                let copied = instructions.iter().any(|instruction| {
                    let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
                    instruction.keyword == "COPY"
                        && words.iter().any(|word| word.starts_with("--from="))
                        && words.ends_with(&[binary.as_str(), program.as_str()])
                });
                if !copied {
                    problems.push(format!(
                        "`{target}` does not copy the release binary to {program}"
                    ));
                }
                for instruction in &instructions {
                    if let Some(from) = instruction
                        .arguments
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("--from="))
                    {
                        build_stages.insert(from.to_string());
                    }
                }
            }
            _ => problems.push(format!(
                "`{target}` has no exec-form ENTRYPOINT running its binary `{target}`"
            )),
        }

        let healthcheck = last("HEALTHCHECK");
        match (is_server, healthcheck) {
            (true, None) => problems.push(format!("`{target}` has no HEALTHCHECK")),
            (true, Some(check)) => {
                let command = check
                    .arguments
                    .split_once("CMD")
                    .and_then(|(_, command)| exec_form(command.trim()));
                if !command.is_some_and(|words| words.iter().any(|word| word.contains("/version")))
                {
                    problems.push(format!(
                        "`{target}`'s HEALTHCHECK does not ask /version in exec form"
                    ));
                }
            }
            (false, _) => {}
        }

        // ENV in a server image configures the server: only the variables it reads.
        for instruction in instructions.iter().filter(|i| i.keyword == "ENV") {
            let variable = instruction.arguments.split(['=', ' ']).next().unwrap_or("");
            if is_server && !ENV_VARS.contains(&variable) {
                problems.push(format!(
                    "`{target}` sets {variable}, which the servers do not read"
                ));
            }
        }

        let installs_libpq = instructions.iter().any(|instruction| {
            instruction.keyword == "RUN" && instruction.arguments.contains("libpq5")
        });
        if let Some(&links) = workspace.links_libpq.get(target)
            && links != installs_libpq
        {
            problems.push(if links {
                format!("`{target}` links libpq.so.5 but its image does not install libpq5")
            } else {
                format!("`{target}` does not link libpq but its image installs libpq5")
            });
        }
    }

    // The stages the binaries come from: a locked release build of the whole workspace, on the
    // project's toolchain and the runtime's Debian release.
    if build_stages.is_empty() {
        problems.push("no target copies its binary from a build stage".to_string());
    }
    for name in &build_stages {
        let Some(build) = dockerfile.stage(name) else {
            problems.push(format!("the build stage `{name}` does not exist"));
            continue;
        };
        let instructions = dockerfile.effective(name);
        let builds = instructions.iter().any(|instruction| {
            instruction.keyword == "RUN"
                && instruction.arguments.contains("cargo build")
                && instruction.arguments.contains("--release")
                && instruction.arguments.contains("--locked")
        });
        if !builds {
            problems.push(format!(
                "the build stage `{name}` runs no `cargo build --release --locked`"
            ));
        }
        let copied: BTreeSet<&str> = build
            .instructions
            .iter()
            .filter(|instruction| instruction.keyword == "COPY")
            .filter(|instruction| !instruction.arguments.contains("--from="))
            .flat_map(|instruction| {
                let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
                words[..words.len().saturating_sub(1)].to_vec()
            })
            .map(|source| source.trim_end_matches('/'))
            .collect();
        for needed in workspace
            .member_folders
            .iter()
            .map(String::as_str)
            .chain(["Cargo.toml", "Cargo.lock"])
        {
            if !copied.contains(needed) {
                problems.push(format!(
                    "the build stage `{name}` does not copy {needed} from the workspace"
                ));
            }
        }
        let image = dockerfile
            .chain(name)
            .last()
            .map(|stage| stage.base.clone())
            .unwrap_or_default();
        let toolchain = image
            .strip_prefix("rust:")
            .and_then(|tag| major_minor(tag.split('-').next().unwrap_or("")));
        match toolchain {
            Some(version) if version >= workspace.rust_version => {}
            _ => problems.push(format!(
                "the build image {image} is not a rust:X.Y image of at least the workspace's rust-version {}.{}",
                workspace.rust_version.0, workspace.rust_version.1
            )),
        }
        for target in workspace.servers.iter().map(String::as_str).chain([TOOL]) {
            let runtime = dockerfile
                .chain(target)
                .last()
                .map(|stage| stage.base.clone())
                .unwrap_or_default();
            let release = runtime
                .strip_prefix("debian:")
                .and_then(|tag| tag.strip_suffix("-slim"));
            if let Some(release) = release
                && !image.ends_with(&format!("-{release}"))
            {
                problems.push(format!(
                    "`{target}` runs on Debian {release} but is built on {image}"
                ));
            }
        }
    }
    problems
}

// ---- compose.yaml ------------------------------------------------------------------------------

/// Applies YAML merge keys (`<<: *anchor`), which Compose honours and the YAML parser leaves to
/// its users: the mapping's own keys win over merged ones.
fn resolve_merges(value: Yaml) -> Yaml {
    match value {
        Yaml::Hash(entries) => {
            let mut merged = yaml_rust2::yaml::Hash::new();
            let mut own = Vec::new();
            for (key, value) in entries {
                if key.as_str() == Some("<<") {
                    let sources = match resolve_merges(value) {
                        Yaml::Array(sources) => sources,
                        source => vec![source],
                    };
                    for source in sources {
                        if let Yaml::Hash(fields) = source {
                            for (key, value) in fields {
                                merged.entry(key).or_insert(value);
                            }
                        }
                    }
                } else {
                    own.push((key, resolve_merges(value)));
                }
            }
            for (key, value) in own {
                merged.insert(key, value);
            }
            Yaml::Hash(merged)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

fn parse_compose(text: &str) -> Yaml {
    let mut documents = YamlLoader::load_from_str(text).unwrap();
    assert_eq!(documents.len(), 1, "compose.yaml holds one document");
    resolve_merges(documents.remove(0))
}

/// A scalar as Compose reads it (numbers and booleans as written).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A list of strings, or one string split at spaces (Compose's two ways to write a command).
fn words(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other)
            .map(|text| text.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

/// `environment:` as a map or as a list of `NAME=value`.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(entries) => entries
            .iter()
            .filter_map(|(key, value)| Some((scalar(key)?, scalar(value).unwrap_or_default())))
            .collect(),
        Yaml::Array(items) => items
            .iter()
            .filter_map(scalar)
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (item, String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The value of `--flag=value` or `--flag value` in a command, each time it occurs.
fn flag_values(command: &[String], flag: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut words = command.iter();
    while let Some(word) = words.next() {
        if word == flag {
            values.extend(words.next().cloned());
        } else if let Some(value) = word.strip_prefix(&format!("{flag}=")) {
            values.push(value.to_string());
        }
    }
    values
}

/// Checks a `DATABASE_URL` of a service: a postgres URL to the compose `postgres` service.
fn check_database_url(service: &str, url: Option<&String>, user: &str) -> Option<String> {
    let parsed = url.and_then(|url| url::Url::parse(url).ok());
    match parsed {
        Some(url)
            if url.scheme() == "postgres"
                && url.host_str() == Some("postgres")
                && url.username() == user =>
        {
            None
        }
        _ => Some(format!(
            "{service}'s DATABASE_URL {url:?} is not postgres://{user}:…@postgres/…"
        )),
    }
}

/// Checks that `build:` makes `target` from docker/Dockerfile (paths are relative to docker/).
fn check_build(name: &str, service: &Yaml, target: &str) -> Option<String> {
    let build = &service["build"];
    let context = build["context"].as_str().unwrap_or(".");
    let dockerfile = compose_default(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
    let path = root().join("docker").join(context).join(&dockerfile);
    let same_file =
        path.canonicalize().ok() == root().join("docker/Dockerfile").canonicalize().ok();
    if same_file && build["target"].as_str() == Some(target) {
        None
    } else {
        Some(format!(
            "service {name} does not build target `{target}` of docker/Dockerfile"
        ))
    }
}

fn check_compose(compose: &Yaml, workspace: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let services = &compose["services"];
    if services.as_hash().is_none() {
        return vec!["compose.yaml has no services".to_string()];
    }
    for required in ["postgres", "seed", "bench"] {
        if services[required].is_badvalue() {
            problems.push(format!("compose.yaml has no `{required}` service"));
        }
    }
    let expected_variables: BTreeSet<String> = ENV_VARS.iter().map(ToString::to_string).collect();

    // The variants: one service each, alike in everything that is measured.
    let mut first: Option<(&str, &Yaml)> = None;
    let mut port = None;
    for name in &workspace.servers {
        let service = &services[name.as_str()];
        if service.is_badvalue() {
            problems.push(format!("compose.yaml has no service for the server {name}"));
            continue;
        }
        problems.extend(check_build(name, service, name));
        if !words(&service["profiles"]).contains(name) {
            problems.push(format!(
                "service {name} is not under its own profile `{name}`"
            ));
        }
        let variables = environment(service);
        let set: BTreeSet<String> = variables.keys().cloned().collect();
        for missing in expected_variables.difference(&set) {
            problems.push(format!("service {name} does not set {missing}"));
        }
        for unknown in set.difference(&expected_variables) {
            problems.push(format!(
                "service {name} sets {unknown}, which the servers do not read"
            ));
        }
        problems.extend(check_database_url(
            &format!("service {name}"),
            variables.get("DATABASE_URL"),
            APP_ROLE,
        ));
        let bind: Option<std::net::SocketAddr> =
            variables.get("BIND").and_then(|bind| bind.parse().ok());
        match bind {
            Some(address) if address.ip().is_unspecified() => port = Some(address.port()),
            _ => problems.push(format!(
                "service {name} does not listen on all interfaces (BIND 0.0.0.0:PORT)"
            )),
        }
        for limit in ["cpus", "mem_limit"] {
            if scalar(&service[limit]).is_none() {
                problems.push(format!("service {name} has no {limit}"));
            }
        }
        let depends = &service["depends_on"];
        for (dependency, condition) in [
            ("postgres", "service_healthy"),
            ("seed", "service_completed_successfully"),
        ] {
            if depends[dependency]["condition"].as_str() != Some(condition) {
                problems.push(format!(
                    "service {name} does not wait for {dependency} ({condition})"
                ));
            }
        }
        match first {
            None => first = Some((name.as_str(), service)),
            Some((first_name, first_service)) => {
                for key in [
                    "environment",
                    "cpus",
                    "cpuset",
                    "mem_limit",
                    "memswap_limit",
                    "deploy",
                    "ulimits",
                    "depends_on",
                    "stop_grace_period",
                ] {
                    if service[key] != first_service[key] {
                        problems.push(format!("services {first_name} and {name} differ in {key}"));
                    }
                }
            }
        }
    }
    let server_environment = first.map(|(_, service)| environment(service));
    // The connection-checking policy is a stated one: a value (or a `${VAR:-default}` default)
    // that the servers accept, never left to each variant.
    if let Some(variables) = &server_environment
        && let Some(value) = variables.get("DB_RECYCLE")
    {
        let effective = value
            .strip_prefix("${")
            .and_then(|inner| inner.strip_suffix('}'))
            .and_then(|inner| inner.split_once(":-"))
            .map_or(value.as_str(), |(_, default)| default);
        if let Err(problem) = DbRecycle::parse(effective) {
            problems.push(format!("the servers' DB_RECYCLE {value:?}: {problem}"));
        }
    }

    // The seeder: the tool's image, `db seed` against the database service.
    let seed = &services["seed"];
    if !seed.is_badvalue() {
        problems.extend(check_build("seed", seed, TOOL));
        if !words(&seed["command"]).starts_with(&["db".to_string(), "seed".to_string()]) {
            problems.push("service seed does not run `bakeoff db seed`".to_string());
        }
        problems.extend(check_database_url(
            "service seed",
            environment(seed).get("DATABASE_URL"),
            "postgres",
        ));
    }

    // The benchmark: every variant as a target, by service name, with the servers' settings.
    let bench = &services["bench"];
    if !bench.is_badvalue() {
        problems.extend(check_build("bench", bench, TOOL));
        let command = words(&bench["command"]);
        if command.first().map(String::as_str) != Some("run") {
            problems.push("service bench does not run `bakeoff run`".to_string());
        }
        if flag_values(&command, "--variants") != ["none"] {
            problems.push(
                "service bench does not say --variants=none: its image has no server binaries, so \
                 only the --target containers can run"
                    .to_string(),
            );
        }
        if !command.iter().any(|word| word == "--allow-remote") {
            problems
                .push("service bench loads other containers but lacks --allow-remote".to_string());
        }
        problems.extend(check_database_url(
            "service bench",
            environment(bench).get("DATABASE_URL"),
            "postgres",
        ));
        let targets: BTreeMap<String, String> = flag_values(&command, "--target")
            .iter()
            .filter_map(|text| TargetSpec::parse(text).ok())
            .map(|target| (target.name, target.url))
            .collect();
        for name in &workspace.servers {
            let expected = port.map(|port| format!("http://{name}:{port}"));
            if targets.get(name) != expected.as_ref() {
                problems.push(format!(
                    "service bench does not target {name} at {}",
                    expected.unwrap_or_else(|| format!("http://{name}:PORT"))
                ));
            }
        }
        if let Some(variables) = &server_environment {
            for (flag, variable) in [("--workers", "WORKERS"), ("--db-pool-size", "DB_POOL_SIZE")] {
                if flag_values(&command, flag).first() != variables.get(variable) {
                    problems.push(format!(
                        "service bench's {flag} is not the servers' {variable}"
                    ));
                }
            }
        }
        let out = flag_values(&command, "--out");
        let mounted = words(&bench["volumes"])
            .iter()
            .map(|volume| compose_default(volume))
            .any(|volume| {
                volume.split(':').nth(1).is_some_and(|inside| {
                    out.first()
                        .is_some_and(|out| Path::new(out).starts_with(inside))
                })
            });
        if !mounted {
            problems.push("service bench does not write --out into a mounted folder".to_string());
        }
    }

    // The database: PostgreSQL with the schema and statement statistics, healthy when ready.
    let postgres = &services["postgres"];
    if !postgres.is_badvalue() {
        if !postgres["image"]
            .as_str()
            .is_some_and(|image| compose_default(image).starts_with("postgres:"))
        {
            problems.push("service postgres does not run the official postgres image".to_string());
        }
        if !words(&postgres["command"])
            .iter()
            .any(|word| word == "shared_preload_libraries=pg_stat_statements")
        {
            problems.push("service postgres does not preload pg_stat_statements".to_string());
        }
        let volumes = words(&postgres["volumes"]);
        let schema_mounted = volumes.iter().any(|volume| {
            let mut parts = volume.split(':');
            let host = root().join("docker").join(parts.next().unwrap_or(""));
            let inside = parts.next().unwrap_or("");
            host.canonicalize().ok() == root().join("schema/schema.sql").canonicalize().ok()
                && inside.starts_with("/docker-entrypoint-initdb.d/")
        });
        if !schema_mounted {
            problems.push(
                "service postgres does not mount schema/schema.sql into /docker-entrypoint-initdb.d"
                    .to_string(),
            );
        }
        for volume in &volumes {
            let host = volume.split(':').next().unwrap_or("");
            if host.starts_with('.') && !root().join("docker").join(host).exists() {
                problems.push(format!(
                    "service postgres mounts {host}, which does not exist"
                ));
            }
        }
        if !words(&postgres["healthcheck"]["test"])
            .iter()
            .any(|word| word == "pg_isready")
        {
            problems.push("service postgres has no pg_isready health check".to_string());
        }
    }
    problems
}

// ---- Without a registry ------------------------------------------------------------------------

/// What makes the images buildable on an engine that reaches no registry: no BuildKit front end
/// to fetch, every base image a build argument (compose passing the same defaults), and the
/// derived Dockerfile.host copying every binary that the root .dockerignore lets through.
fn check_offline(
    dockerfile: &str,
    host_build: &str,
    compose: &Yaml,
    ignore_buildkit: &str,
    ignore_legacy: &str,
    workspace: &Workspace,
) -> Vec<String> {
    let mut problems = Vec::new();
    if dockerfile
        .lines()
        .any(|line| line.trim_start().starts_with("# syntax"))
    {
        problems.push(
            "the Dockerfile has a `# syntax=` line, which BuildKit fetches from a registry"
                .to_string(),
        );
    }
    let parsed = Dockerfile::parse(dockerfile);
    let stages: BTreeSet<&str> = parsed
        .stages
        .iter()
        .filter_map(|stage| stage.name.as_deref())
        .collect();
    for line in dockerfile.lines().filter(|line| line.starts_with("FROM ")) {
        let base = line.split_whitespace().nth(1).unwrap_or("");
        if !stages.contains(base) && !base.starts_with("${") {
            problems.push(format!(
                "`{line}` names an image instead of a build argument"
            ));
        }
    }
    let arguments = global_arguments(dockerfile);
    let build_args = &compose["x-build-args"];
    for name in ["RUST_IMAGE", "DEBIAN_IMAGE"] {
        let in_compose = build_args[name].as_str().map(compose_default);
        if in_compose.as_ref() != arguments.get(name) {
            problems.push(format!(
                "compose passes {name} {in_compose:?} by default, the Dockerfile's default is {:?}",
                arguments.get(name)
            ));
        }
    }

    // The derived file: the same runtime stages, its build stage copying every binary.
    let host = Dockerfile::parse(&host_dockerfile(dockerfile, host_build));
    let binaries: Vec<&str> = workspace
        .servers
        .iter()
        .map(String::as_str)
        .chain([TOOL])
        .collect();
    match host.stage("build") {
        None => problems.push("the derived Dockerfile.host has no `build` stage".to_string()),
        Some(build) => {
            let copied: Vec<&str> = build
                .instructions
                .iter()
                .filter(|instruction| instruction.keyword == "COPY")
                .flat_map(|instruction| instruction.arguments.split_whitespace())
                .collect();
            for binary in &binaries {
                if !copied.contains(&format!("target/${{PROFILE}}/{binary}").as_str()) {
                    problems.push(format!(
                        "Dockerfile.host's build stage does not copy {binary}"
                    ));
                }
            }
        }
    }
    for target in &binaries {
        let runtime = |file: &Dockerfile| {
            file.effective(target)
                .iter()
                .map(|instruction| format!("{} {}", instruction.keyword, instruction.arguments))
                .collect::<Vec<_>>()
        };
        if host.stage(target).is_none() || runtime(&host) != runtime(&parsed) {
            problems.push(format!(
                "Dockerfile.host's `{target}` is not docker/Dockerfile's"
            ));
        }
    }
    let patterns = |text: &str| -> BTreeSet<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let legacy = patterns(ignore_legacy);
    for pattern in patterns(ignore_buildkit).difference(&legacy) {
        problems.push(format!(
            ".dockerignore lacks {pattern} of docker/Dockerfile.dockerignore"
        ));
    }
    for profile in ["release", "debug"] {
        for binary in &binaries {
            let pattern = format!("!target/{profile}/{binary}");
            if !legacy.contains(&pattern) {
                problems.push(format!(
                    ".dockerignore does not let {pattern} into the context"
                ));
            }
        }
    }
    problems
}

/// The benchmark services read the containers' cgroups and measure every scenario by default;
/// every peer has a service of the `peers` profile that bench-peers targets.
fn check_compose_containers(compose: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let services = &compose["services"];
    for name in ["bench", "bench-peers"] {
        let bench = &services[name];
        // A benchmark under a profile that `up` starts would run by itself at once.
        if words(&bench["profiles"]) != [name.to_string()] {
            problems.push(format!(
                "service {name} is not under its own profile `{name}` alone"
            ));
        }
        let command: Vec<String> = words(&bench["command"])
            .iter()
            .map(|word| compose_default(word))
            .collect();
        let cgroups = flag_values(&command, "--container-cgroups");
        let mounted = words(&bench["volumes"]).iter().any(|volume| {
            let parts: Vec<&str> = volume.split(':').collect();
            parts.first() == Some(&"/sys/fs/cgroup")
                && cgroups.first().map(String::as_str) == parts.get(1).copied()
                && parts.get(2) == Some(&"ro")
        });
        if !mounted {
            problems.push(format!(
                "service {name} does not mount /sys/fs/cgroup read-only where --container-cgroups says"
            ));
        }
        let scenarios: Vec<String> = flag_values(&command, "--scenarios")
            .iter()
            .flat_map(|list| list.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
        let all: Vec<String> = Scenario::all().iter().map(ToString::to_string).collect();
        if scenarios != all {
            problems.push(format!(
                "service {name} measures {scenarios:?} by default, not every scenario"
            ));
        }
    }
    let targets: BTreeMap<String, String> =
        flag_values(&words(&services["bench-peers"]["command"]), "--target")
            .iter()
            .filter_map(|text| TargetSpec::parse(text).ok())
            .map(|target| (target.name, target.url))
            .collect();
    for peer in Peer::all().iter().filter(|peer| peer.has_image()) {
        let name = peer.name();
        let service = &services[name.as_str()];
        if service.is_badvalue() {
            problems.push(format!("compose.yaml has no service for the peer {name}"));
            continue;
        }
        if !words(&service["profiles"]).contains(&"peers".to_string()) {
            problems.push(format!("service {name} is not under the profile `peers`"));
        }
        if words(&service["command"]) != [format!("/peers/{name}/serve.py")] {
            problems.push(format!(
                "service {name} does not run /peers/{name}/serve.py"
            ));
        }
        if targets.get(&name) != Some(&format!("http://{name}:8000")) {
            problems.push(format!("service bench-peers does not target {name}"));
        }
    }
    problems
}

// ---- The tests ---------------------------------------------------------------------------------

#[test]
fn the_servers_are_the_benchmarks_variants() {
    let workspace = Workspace::load();
    let variants: BTreeSet<String> = Variant::all()
        .iter()
        .map(|variant| variant.name())
        .collect();
    assert_eq!(workspace.servers, variants);
}

#[test]
fn the_dockerfile_builds_every_server_and_the_tool() {
    let workspace = Workspace::load();
    let problems = check_dockerfile(&Dockerfile::parse(&read("docker/Dockerfile")), &workspace);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn compose_runs_every_server_alike() {
    let workspace = Workspace::load();
    let problems = check_compose(&parse_compose(&read("docker/compose.yaml")), &workspace);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn checks_catch_drift() {
    let workspace = Workspace::load();
    let dockerfile = read("docker/Dockerfile");
    let compose = read("docker/compose.yaml");
    let broken = |text: &str, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the files changed: update this test ({from:?})"
        );
        text.replacen(from, to, 1)
    };
    let dockerfile_problems =
        |text: String| check_dockerfile(&Dockerfile::parse(&text), &workspace);
    let compose_problems = |text: String| check_compose(&parse_compose(&text), &workspace);
    let mentions = |problems: Vec<String>, words: &str| {
        assert!(
            problems.iter().any(|problem| problem.contains(words)),
            "expected a problem mentioning {words:?}, got {problems:?}"
        );
    };

    mentions(
        dockerfile_problems(broken(&dockerfile, "AS threaded-blocking", "AS threaded")),
        "no stage `threaded-blocking`",
    );
    mentions(
        dockerfile_problems(broken(&dockerfile, "USER 10001:10001\n", "USER root\n")),
        "runs as root",
    );
    mentions(
        dockerfile_problems(broken(&dockerfile, "ENV BIND=", "ENV LISTEN=")),
        "sets LISTEN",
    );
    mentions(
        dockerfile_problems(broken(
            &dockerfile,
            "COPY bench bench\nCOPY schema schema\nRUN cargo build",
            "COPY schema schema\nRUN cargo build",
        )),
        "does not copy bench",
    );
    // Which binaries link libpq is read from the built binaries, when there are some.
    if workspace.links_libpq.get("threaded-blocking") == Some(&true) {
        mentions(
            dockerfile_problems(broken(
                &dockerfile,
                "FROM server-libpq AS threaded-blocking",
                "FROM server AS threaded-blocking",
            )),
            "links libpq.so.5",
        );
    }
    if workspace.links_libpq.get("axum-tokio-postgres") == Some(&false) {
        mentions(
            dockerfile_problems(broken(
                &dockerfile,
                "FROM server AS axum-tokio-postgres",
                "FROM server-libpq AS axum-tokio-postgres",
            )),
            "installs libpq5",
        );
    }

    mentions(
        compose_problems(broken(&compose, "  RUST_LOG: ", "  LOG_LEVEL: ")),
        "does not set RUST_LOG",
    );
    mentions(
        compose_problems(broken(
            &compose,
            "${BAKEOFF_DB_RECYCLE:-fast}",
            "${BAKEOFF_DB_RECYCLE:-sometimes}",
        )),
        "DB_RECYCLE \"${BAKEOFF_DB_RECYCLE:-sometimes}\"",
    );
    mentions(
        compose_problems(broken(&compose, "  actix-deadpool:\n", "  actix:\n")),
        "no service for the server actix-deadpool",
    );
    mentions(
        compose_problems(broken(
            &compose,
            "      - \"127.0.0.1:8004:8000\"\n",
            "      - \"127.0.0.1:8004:8000\"\n    cpus: 4\n",
        )),
        "differ in cpus",
    );
    mentions(
        compose_problems(broken(
            &compose,
            "      - --target=warp-diesel-async=http://warp-diesel-async:8000\n",
            "",
        )),
        "does not target warp-diesel-async",
    );
    mentions(
        compose_problems(broken(&compose, "      - --allow-remote\n", "")),
        "--allow-remote",
    );
}

#[test]
fn the_images_build_without_a_registry() {
    let workspace = Workspace::load();
    let problems = check_offline(
        &read("docker/Dockerfile"),
        &read("docker/host-binaries.dockerfile"),
        &parse_compose(&read("docker/compose.yaml")),
        &read("docker/Dockerfile.dockerignore"),
        &read(".dockerignore"),
        &workspace,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn compose_measures_containers_and_peers() {
    let problems = check_compose_containers(&parse_compose(&read("docker/compose.yaml")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn offline_checks_catch_drift() {
    let workspace = Workspace::load();
    let dockerfile = read("docker/Dockerfile");
    let host_build = read("docker/host-binaries.dockerfile");
    let compose = read("docker/compose.yaml");
    let buildkit = read("docker/Dockerfile.dockerignore");
    let legacy = read(".dockerignore");
    let offline = |dockerfile: &str, host_build: &str, compose: &str, legacy: &str| {
        check_offline(
            dockerfile,
            host_build,
            &parse_compose(compose),
            &buildkit,
            legacy,
            &workspace,
        )
    };
    let mentions = |problems: Vec<String>, words: &str| {
        assert!(
            problems.iter().any(|problem| problem.contains(words)),
            "expected a problem mentioning {words:?}, got {problems:?}"
        );
    };
    let broken = |text: &str, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the files changed: update this test ({from:?})"
        );
        text.replacen(from, to, 1)
    };
    mentions(
        offline(
            &format!("# syntax=docker/dockerfile:1\n{dockerfile}"),
            &host_build,
            &compose,
            &legacy,
        ),
        "syntax",
    );
    mentions(
        offline(
            &broken(
                &dockerfile,
                "FROM ${DEBIAN_IMAGE} AS runtime",
                "FROM debian:bookworm-slim AS runtime",
            ),
            &host_build,
            &compose,
            &legacy,
        ),
        "names an image",
    );
    mentions(
        offline(
            &dockerfile,
            &host_build,
            &broken(&compose, "debian:bookworm-slim}", "debian:trixie-slim}"),
            &legacy,
        ),
        "DEBIAN_IMAGE",
    );
    mentions(
        offline(
            &dockerfile,
            &broken(&host_build, " target/${PROFILE}/warp-diesel-async", ""),
            &compose,
            &legacy,
        ),
        "does not copy warp-diesel-async",
    );
    mentions(
        offline(
            &dockerfile,
            &host_build,
            &compose,
            &broken(&legacy, "!target/debug/bakeoff\n", ""),
        ),
        "!target/debug/bakeoff",
    );
    mentions(
        offline(
            &dockerfile,
            &host_build,
            &compose,
            &broken(&legacy, "!schema\n", ""),
        ),
        "lacks !schema",
    );
    let containers = |compose: String| check_compose_containers(&parse_compose(&compose));
    mentions(
        containers(broken(
            &compose,
            "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
            "/sys/fs/cgroup:/host/sys/fs/cgroup",
        )),
        "read-only",
    );
    mentions(
        containers(broken(
            &compose,
            "profiles: [bench-peers]",
            "profiles: [peers]",
        )),
        "own profile `bench-peers` alone",
    );
    mentions(
        containers(broken(&compose, "contacts-search,fibonacci}", "fibonacci}")),
        "not every scenario",
    );
    mentions(
        containers(broken(
            &compose,
            "      - --target=flask-gunicorn=http://flask-gunicorn:8000\n",
            "",
        )),
        "does not target flask-gunicorn",
    );
}
