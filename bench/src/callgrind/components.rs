//! What a server's instructions were spent on: each function's own cost assigned to the crate
//! (or, without source information, the library) its code came from, and each crate to a
//! component of the request path: the server's own code, the framework, the async runtime, the
//! database driver, serialization, the allocator, Rust's standard library, the system libraries.
//!
//! A crate is recognised by the path of its source files: `.../registry/src/INDEX/NAME-VERSION/`
//! for crates.io dependencies, `/rustc/HASH/library/` for the standard library, `crates/NAME/` and
//! `third_party/NAME/` for the workspace. Code inlined across crates counts where it was written
//! (the profile gives each cost line its source file), so a generic of serde_json monomorphized
//! into a handler is serialization. Python peers have no such paths: their interpreter, its
//! extension modules and the C libraries are told apart by object file only.

use crate::callgrind::profile::SelfCost;
use crate::results::vocabulary::Component;

impl Component {
    /// Every component, in the order tables and charts show them.
    pub const ALL: [Component; 9] = [
        Component::Server,
        Component::Framework,
        Component::Runtime,
        Component::Database,
        Component::Serialization,
        Component::Allocator,
        Component::Std,
        Component::System,
        Component::Other,
    ];

    /// The short name of tables and legends.
    pub fn name(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Framework => "framework",
            Component::Runtime => "runtime",
            Component::Database => "database",
            Component::Serialization => "serialization",
            Component::Allocator => "allocator",
            Component::Std => "std",
            Component::System => "system",
            Component::Other => "other",
        }
    }

    /// What it holds, for the report's legend.
    pub fn description(self) -> &'static str {
        match self {
            Component::Server => "the server's own crate and bakeoff-core",
            Component::Framework => {
                "the web framework, its HTTP implementation and router (hyper, axum, actix-web, warp, tiny_http, http, httparse)"
            }
            Component::Runtime => {
                "the async runtime and I/O (tokio, mio, futures, actix-rt, bytes, parking_lot); a Python peer's interpreter"
            }
            Component::Database => {
                "the database driver, pool and ORM (tokio-postgres, postgres-protocol, deadpool, diesel, r2d2, libpq; asyncpg, psycopg)"
            }
            Component::Serialization => "serde, serde_json, itoa, ryu",
            Component::Allocator => "glibc's malloc and free, Rust's allocator shims",
            Component::Std => "Rust's standard library (core, alloc, std)",
            Component::System => "glibc less its allocator, the dynamic loader, other C libraries",
            Component::Other => "everything else (logging, hashing, crates not listed)",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Where a cost's code came from: a crate (`tokio`, `crates/core`, `std`) or, without source
/// information, the object file's name (`libc.so.6`, `python3.11`).
pub fn source_of(cost: &SelfCost) -> String {
    if let Some(name) = crate_of_path(&cost.file) {
        return name;
    }
    if let Some(package) = python_package(&cost.object) {
        return format!("python:{package}");
    }
    object_name(&cost.object).to_string()
}

/// The component a cost belongs to.
pub fn component_of(cost: &SelfCost) -> Component {
    if is_allocator(cost) {
        return Component::Allocator;
    }
    if let Some(name) = crate_of_path(&cost.file) {
        return component_of_crate(&name);
    }
    if let Some(package) = python_package(&cost.object) {
        return component_of_python_package(&package);
    }
    component_of_object(object_name(&cost.object))
}

/// The file name of an object path: `/usr/lib/x86_64-linux-gnu/libc.so.6` -> `libc.so.6`.
fn object_name(object: &str) -> &str {
    object.rsplit('/').next().unwrap_or(object)
}

/// The crate a source file belongs to: a crates.io crate's name, `std` for the standard library
/// (and the crates it vendors), `crates/NAME` or `third_party/NAME` for the workspace; `None`
/// for a file of no known place (C sources, `???`).
pub fn crate_of_path(file: &str) -> Option<String> {
    if let Some((_, rest)) = file.split_once("/registry/src/") {
        // INDEX/NAME-VERSION/...
        let directory = rest.split('/').nth(1)?;
        return Some(crate_name(directory).to_string());
    }
    if file.starts_with("/rustc/") || file.starts_with("/rust/deps/") {
        return Some("std".to_string());
    }
    for root in ["crates/", "third_party/"] {
        let start = if file.starts_with(root) {
            Some(0)
        } else {
            file.find(&format!("/{root}")).map(|at| at + 1)
        };
        if let Some(start) = start {
            let after = &file[start + root.len()..];
            let name = after.split('/').next().filter(|name| !name.is_empty())?;
            return Some(format!("{root}{name}"));
        }
    }
    None
}

/// `tokio-postgres-0.7.14` -> `tokio-postgres`: the name ends at the first dash followed by a
/// `MAJOR.MINOR.PATCH` version (so `md-5-0.10.6` is `md-5`).
fn crate_name(directory: &str) -> &str {
    directory
        .match_indices('-')
        .map(|(at, _)| at)
        .find(|&at| starts_with_version(&directory[at + 1..]))
        .map_or(directory, |at| &directory[..at])
}

/// Whether `text` starts with `MAJOR.MINOR.PATCH`, each a number (a pre-release may follow).
fn starts_with_version(text: &str) -> bool {
    let number = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    let mut parts = text.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(major), Some(minor), Some(patch)) => {
            number(major) && number(minor) && patch.starts_with(|c: char| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// The component of a crate, by name (the one list to extend when a server adds a dependency
/// whose cost matters).
pub fn component_of_crate(name: &str) -> Component {
    if name.starts_with("crates/") {
        return Component::Server;
    }
    if name == "std" {
        return Component::Std;
    }
    let name = name.strip_prefix("third_party/").unwrap_or(name);
    match name.replace('_', "-").as_str() {
        "axum" | "axum-core" | "hyper" | "hyper-util" | "http" | "http-body" | "http-body-util"
        | "httparse" | "httpdate" | "tower" | "tower-layer" | "tower-service" | "tower-http"
        | "matchit" | "actix-web" | "actix-http" | "actix-router" | "actix-service"
        | "actix-utils" | "actix-server" | "actix-codec" | "actix-macros" | "warp" | "headers"
        | "headers-core" | "tiny-http" | "ascii" | "chunked-transfer" | "mime" | "mime-guess"
        | "percent-encoding" | "form-urlencoded" | "url" | "idna" | "language-tags"
        | "encoding-rs" | "regex" | "regex-automata" | "regex-syntax" | "regex-lite"
        | "aho-corasick" | "memchr" | "derive-more" | "scoped-tls" | "sync-wrapper" | "cookie"
        | "time" | "serde-urlencoded" => Component::Framework,
        "tokio"
        | "tokio-util"
        | "tokio-stream"
        | "mio"
        | "futures"
        | "futures-util"
        | "futures-core"
        | "futures-channel"
        | "futures-task"
        | "futures-sink"
        | "futures-executor"
        | "futures-io"
        | "pin-project"
        | "pin-project-lite"
        | "pin-utils"
        | "parking-lot"
        | "parking-lot-core"
        | "lock-api"
        | "crossbeam-utils"
        | "crossbeam-channel"
        | "crossbeam-queue"
        | "crossbeam-epoch"
        | "actix-rt"
        | "local-channel"
        | "local-waker"
        | "signal-hook"
        | "signal-hook-registry"
        | "socket2"
        | "slab"
        | "bytes"
        | "bytestring"
        | "smallvec"
        | "atomic-waker"
        | "event-listener"
        | "async-trait"
        | "libc"
        | "nix"
        | "once-cell"
        | "num-cpus" => Component::Runtime,
        "tokio-postgres"
        | "postgres-protocol"
        | "postgres-types"
        | "postgres"
        | "deadpool"
        | "deadpool-postgres"
        | "deadpool-runtime"
        | "deadpool-sync"
        | "diesel"
        | "diesel-async"
        | "diesel-derives"
        | "r2d2"
        | "pq-sys"
        | "scheduled-thread-pool"
        | "fallible-iterator"
        | "phf"
        | "phf-shared"
        | "stringprep"
        | "md-5"
        | "sha2"
        | "hmac"
        | "digest"
        | "base64"
        | "byteorder"
        | "whoami"
        | "siphasher" => Component::Database,
        "serde" | "serde-json" | "serde-core" | "itoa" | "ryu" | "serde-path-to-error" => {
            Component::Serialization
        }
        _ => Component::Other,
    }
}

/// The package of a Python extension module: `.../site-packages/asyncpg/protocol/x.so` ->
/// `asyncpg`.
fn python_package(object: &str) -> Option<String> {
    let (_, rest) = object.split_once("/site-packages/")?;
    let package = rest.split('/').next()?;
    // A module at the top level (`_cffi_backend.cpython-311-x86_64-linux-gnu.so`) is its name.
    Some(package.split('.').next().unwrap_or(package).to_string())
}

fn component_of_python_package(package: &str) -> Component {
    match package.trim_start_matches('_') {
        "asyncpg" | "psycopg" | "psycopg-binary" | "psycopg_binary" | "sqlalchemy" | "greenlet" => {
            Component::Database
        }
        "uvloop" => Component::Runtime,
        "httptools" | "h11" | "starlette" | "fastapi" | "flask" | "werkzeug" => {
            Component::Framework
        }
        "pydantic" | "pydantic_core" | "orjson" | "ujson" => Component::Serialization,
        _ => Component::Other,
    }
}

/// The component of an object without source information.
fn component_of_object(name: &str) -> Component {
    if name.starts_with("libpq.so") {
        Component::Database
    } else if name.starts_with("python") || name.starts_with("libpython") {
        Component::Runtime
    } else if name.starts_with("lib") || name.starts_with("ld-linux") || name == "[vdso]" {
        Component::System
    } else {
        Component::Other
    }
}

/// glibc's malloc family (by its source, `malloc/` in libc6-dbg's information, or by name), and
/// Rust's allocator shims.
fn is_allocator(cost: &SelfCost) -> bool {
    // Rust 1.9x names its shims `__rustc::__rust_alloc`, `__rustc::__rdl_alloc`.
    let function = cost.function.trim_start_matches("__rustc::");
    let shims = [
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_no_alloc_shim",
        "__rdl_",
        "__rg_",
    ];
    if shims.iter().any(|shim| function.starts_with(shim))
        || cost.file.contains("/library/std/src/sys/alloc/")
    {
        return true;
    }
    if !object_name(&cost.object).starts_with("libc.so") {
        return false;
    }
    cost.file.starts_with("./malloc/")
        || matches!(
            function,
            "malloc"
                | "free"
                | "realloc"
                | "calloc"
                | "posix_memalign"
                | "aligned_alloc"
                | "memalign"
                | "_int_malloc"
                | "_int_free"
                | "_int_realloc"
                | "_int_memalign"
                | "malloc_consolidate"
                | "tcache_init"
                | "unlink_chunk"
                | "sysmalloc"
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cost(object: &str, file: &str, function: &str) -> SelfCost {
        SelfCost {
            object: object.to_string(),
            file: file.to_string(),
            function: function.to_string(),
            instructions: 1,
            system_calls: 0,
        }
    }

    const REGISTRY: &str = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";

    #[test]
    fn crates_are_named_from_their_source_paths() {
        let cases = [
            (
                format!("{REGISTRY}/tokio-1.47.1/src/runtime/park.rs"),
                "tokio",
            ),
            (
                format!("{REGISTRY}/tokio-postgres-0.7.14/src/client.rs"),
                "tokio-postgres",
            ),
            (format!("{REGISTRY}/md-5-0.10.6/src/lib.rs"), "md-5"),
            (format!("{REGISTRY}/h2-0.4.12/src/lib.rs"), "h2"),
            (
                format!("{REGISTRY}/windows-sys-0.52.0-rc.1/src/lib.rs"),
                "windows-sys",
            ),
            (
                "/rustc/29483883eed69d5fb4db01964cdf2af4d86e9cb2/library/core/src/fmt/mod.rs"
                    .to_string(),
                "std",
            ),
            (
                "/rust/deps/hashbrown-0.15.2/src/raw/mod.rs".to_string(),
                "std",
            ),
            (
                "/build/bakeoff/crates/core/src/pg.rs".to_string(),
                "crates/core",
            ),
            (
                "crates/actix-deadpool/src/handlers.rs".to_string(),
                "crates/actix-deadpool",
            ),
            (
                "/b/third_party/tiny_http/src/lib.rs".to_string(),
                "third_party/tiny_http",
            ),
        ];
        for (path, name) in cases {
            assert_eq!(crate_of_path(&path).as_deref(), Some(name), "{path}");
        }
        assert_eq!(crate_of_path("./malloc/malloc.c"), None);
        assert_eq!(crate_of_path("???"), None);
    }

    #[test]
    fn rust_code_goes_to_the_component_of_its_crate() {
        let binary = "/t/release/actix-deadpool";
        let cases = [
            (
                cost(binary, "crates/actix-deadpool/src/db.rs", "x"),
                Component::Server,
            ),
            (
                cost(binary, "/b/crates/core/src/model.rs", "x"),
                Component::Server,
            ),
            (
                cost(
                    binary,
                    &format!("{REGISTRY}/actix-http-3.11.0/src/h1/codec.rs"),
                    "x",
                ),
                Component::Framework,
            ),
            (
                cost(
                    binary,
                    &format!("{REGISTRY}/serde_json-1.0.140/src/ser.rs"),
                    "x",
                ),
                Component::Serialization,
            ),
            (
                cost(
                    binary,
                    &format!("{REGISTRY}/postgres-protocol-0.6.8/src/lib.rs"),
                    "x",
                ),
                Component::Database,
            ),
            (
                cost(binary, &format!("{REGISTRY}/mio-1.0.4/src/poll.rs"), "x"),
                Component::Runtime,
            ),
            (
                cost(binary, "/rustc/abc/library/core/src/str/mod.rs", "x"),
                Component::Std,
            ),
            (
                cost(binary, "/rustc/abc/library/std/src/sys/alloc/unix.rs", "x"),
                Component::Allocator,
            ),
        ];
        for (cost, component) in cases {
            assert_eq!(component_of(&cost), component, "{cost:?}");
        }
    }

    #[test]
    fn the_allocator_c_libraries_and_python_go_by_function_and_object() {
        let binary = "/t/release/actix-deadpool";
        let cases = [
            (cost(binary, "???", "__rust_dealloc"), Component::Allocator),
            (
                cost(binary, "???", "__rustc::__rdl_alloc"),
                Component::Allocator,
            ),
            (
                cost(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    "./malloc/malloc.c",
                    "_int_free",
                ),
                Component::Allocator,
            ),
            (
                cost("/usr/lib/x86_64-linux-gnu/libc.so.6", "???", "malloc"),
                Component::Allocator,
            ),
            (
                cost(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    "./string/memcpy.S",
                    "memcpy",
                ),
                Component::System,
            ),
            (
                cost("/usr/lib/x86_64-linux-gnu/libpq.so.5.15", "???", "PQexec"),
                Component::Database,
            ),
            (
                cost("/usr/bin/python3.11", "???", "_PyEval_EvalFrameDefault"),
                Component::Runtime,
            ),
            (
                cost(
                    "/v/lib/python3.11/site-packages/asyncpg/protocol/protocol.cpython-311-x86_64-linux-gnu.so",
                    "???",
                    "x",
                ),
                Component::Database,
            ),
            (
                cost(
                    binary,
                    &format!("{REGISTRY}/tracing-core-0.1.34/src/lib.rs"),
                    "x",
                ),
                Component::Other,
            ),
        ];
        for (cost, component) in cases {
            assert_eq!(component_of(&cost), component, "{cost:?}");
        }
        let module = "/v/lib/python3.11/site-packages/uvloop/loop.cpython-311-x86_64-linux-gnu.so";
        assert_eq!(source_of(&cost(module, "???", "x")), "python:uvloop");
        assert_eq!(
            source_of(&cost(
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "./malloc/malloc.c",
                "x"
            )),
            "libc.so.6"
        );
    }
}
