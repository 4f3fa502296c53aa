//! Reading a callgrind profile (`callgrind.out.PID.N`, format version 1, as Valgrind 3.x
//! writes it): every function's own cost (what it executed itself, not what it called), per
//! object, source file and function.
//!
//! Cost lines are attributed to the source file they were compiled from: callgrind switches the
//! file inside a function (`fi=`, `fe=`) where code was inlined from another file, so the
//! instructions of a serde_json routine inlined into a handler count as serde_json's. Call lines
//! (`calls=` and the line after it) carry the inclusive cost of a call, already counted in the
//! callee, and are skipped. Names may be compressed (`(12) name` defines number 12 of its kind,
//! `(12)` refers to it), and positions may be relative (`+3`, `-2`, `*`): both are understood.

use std::collections::HashMap;

/// The event callgrind counts executed instructions with.
pub const INSTRUCTIONS: &str = "Ir";
/// The event `--collect-systime` counts system calls with.
pub const SYSTEM_CALLS: &str = "sysCount";

/// Why a file could not be read as a callgrind profile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("no `events:` line before the first cost: not a callgrind profile")]
    NoEvents,
    #[error("the profile does not count the event `{0}`")]
    MissingEvent(&'static str),
}

/// What one function executed itself, from one source file (a function that inlined code from
/// several files has one entry per file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCost {
    /// The executable or shared library, as a path (`???` when unknown).
    pub object: String,
    /// The source file (`???` without debug information).
    pub file: String,
    /// The function, demangled as Valgrind prints it (an address without a symbol).
    pub function: String,
    pub instructions: u64,
    /// System calls made from it (0 when the profile was not made with `--collect-systime`).
    pub system_calls: u64,
}

/// One process's profile: its own costs, aggregated per object, file and function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The `pid:` of the file.
    pub pid: Option<u32>,
    pub costs: Vec<SelfCost>,
}

impl Profile {
    /// Every instruction the process executed while instrumented.
    pub fn instructions(&self) -> u64 {
        self.costs.iter().map(|cost| cost.instructions).sum()
    }

    /// Every system call it made while instrumented.
    pub fn system_calls(&self) -> u64 {
        self.costs.iter().map(|cost| cost.system_calls).sum()
    }
}

/// The names of one kind (objects, files or functions): callgrind's numbers for them and our
/// own index of each distinct name.
#[derive(Default)]
struct Names {
    by_number: HashMap<u64, usize>,
    by_name: HashMap<String, usize>,
    names: Vec<String>,
}

impl Names {
    fn intern(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }

    /// `(12) name` (defines 12), `(12)` (refers to it) or a plain `name`.
    fn resolve(&mut self, value: &str) -> Result<usize, String> {
        let Some(rest) = value.strip_prefix('(') else {
            return Ok(self.intern(value.trim()));
        };
        let (number, name) = rest
            .split_once(')')
            .ok_or_else(|| format!("unclosed name number in {value:?}"))?;
        let number: u64 = number
            .parse()
            .map_err(|_| format!("bad name number in {value:?}"))?;
        let name = name.trim();
        if name.is_empty() {
            self.by_number
                .get(&number)
                .copied()
                .ok_or_else(|| format!("name number {number} used before it was defined"))
        } else {
            let index = self.intern(name);
            self.by_number.insert(number, index);
            Ok(index)
        }
    }
}

/// Where the parser is: the current object, function and source file, and the columns.
#[derive(Default)]
struct State {
    objects: Names,
    files: Names,
    functions: Names,
    object: usize,
    /// The file of the function (`fl=`), and the file its next costs come from (`fi=`, `fe=`).
    function_file: usize,
    file: usize,
    function: usize,
    /// Columns of a cost line before the events (`positions:`; one, `line`, by default).
    positions: usize,
    /// Indexes of the two events among the `events:`.
    events: Option<(usize, Option<usize>)>,
    /// The next cost line is a call's inclusive cost.
    call_cost_follows: bool,
    totals: HashMap<(usize, usize, usize), (u64, u64)>,
    pid: Option<u32>,
}

/// Parses a callgrind profile.
pub fn parse(text: &str) -> Result<Profile, ParseError> {
    let mut state = State {
        positions: 1,
        ..State::default()
    };
    // The empty name, for costs before any `ob=`, `fl=` or `fn=`.
    state.objects.intern("???");
    state.files.intern("???");
    state.functions.intern("???");
    for (index, line) in text.lines().enumerate() {
        state.line(line).map_err(|problem| match problem {
            LineError::Text(problem) => ParseError::Line {
                line: index + 1,
                problem,
            },
            LineError::Profile(error) => error,
        })?;
    }
    let mut costs: Vec<SelfCost> = state
        .totals
        .iter()
        .filter(|(_, (instructions, calls))| *instructions > 0 || *calls > 0)
        .map(
            |(&(object, file, function), &(instructions, calls))| SelfCost {
                object: state.objects.names[object].clone(),
                file: state.files.names[file].clone(),
                function: state.functions.names[function].clone(),
                instructions,
                system_calls: calls,
            },
        )
        .collect();
    costs.sort_by(|a, b| {
        b.instructions
            .cmp(&a.instructions)
            .then_with(|| (&a.object, &a.file, &a.function).cmp(&(&b.object, &b.file, &b.function)))
    });
    Ok(Profile {
        pid: state.pid,
        costs,
    })
}

enum LineError {
    Text(String),
    Profile(ParseError),
}

impl From<String> for LineError {
    fn from(problem: String) -> LineError {
        LineError::Text(problem)
    }
}

impl State {
    fn line(&mut self, line: &str) -> Result<(), LineError> {
        let line = line.trim_end();
        let Some(first) = line.chars().next() else {
            return Ok(());
        };
        if first == '#' {
            return Ok(());
        }
        if first.is_ascii_digit() || matches!(first, '+' | '-' | '*') {
            return self.cost(line);
        }
        // `key=value` (a specification) or `key: value` (a header), whichever sign comes first.
        let equals = line.find('=');
        let colon = line.find(':');
        match (equals, colon) {
            (Some(at), colon) if colon.is_none_or(|colon| at < colon) => {
                self.specification(&line[..at], &line[at + 1..])?;
            }
            (_, Some(at)) => self.header(&line[..at], line[at + 1..].trim())?,
            _ => return Err(format!("unrecognised line {line:?}").into()),
        }
        Ok(())
    }

    fn specification(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "ob" => self.object = self.objects.resolve(value)?,
            "fl" => {
                self.function_file = self.files.resolve(value)?;
                self.file = self.function_file;
            }
            "fi" | "fe" => self.file = self.files.resolve(value)?,
            "fn" => {
                self.function = self.functions.resolve(value)?;
                self.file = self.function_file;
            }
            // A call's target: only its names are taken (they may be referred to later).
            "cob" => {
                self.objects.resolve(value)?;
            }
            "cfi" | "cfl" => {
                self.files.resolve(value)?;
            }
            "cfn" => {
                self.functions.resolve(value)?;
            }
            "calls" => self.call_cost_follows = true,
            // Jumps (`--collect-jumps`) carry no cost of their own.
            "jump" | "jcnd" => {}
            _ => return Err(format!("unknown specification {key:?}")),
        }
        Ok(())
    }

    fn header(&mut self, key: &str, value: &str) -> Result<(), LineError> {
        match key {
            "events" => {
                let events: Vec<&str> = value.split_whitespace().collect();
                let instructions = events
                    .iter()
                    .position(|event| *event == INSTRUCTIONS)
                    .ok_or(LineError::Profile(ParseError::MissingEvent(INSTRUCTIONS)))?;
                let calls = events.iter().position(|event| *event == SYSTEM_CALLS);
                self.events = Some((instructions, calls));
            }
            "positions" => self.positions = value.split_whitespace().count().max(1),
            "pid" => self.pid = value.parse().ok(),
            // version, creator, cmd, part, desc, event, summary, totals, thread...: nothing to take.
            _ => {}
        }
        Ok(())
    }

    fn cost(&mut self, line: &str) -> Result<(), LineError> {
        let (instructions_column, calls_column) = self
            .events
            .ok_or(LineError::Profile(ParseError::NoEvents))?;
        if std::mem::take(&mut self.call_cost_follows) {
            return Ok(());
        }
        let mut tokens = line.split_whitespace();
        for _ in 0..self.positions {
            tokens.next();
        }
        let mut instructions = 0;
        let mut calls = 0;
        for (column, token) in tokens.enumerate() {
            let value: u64 = token
                .parse()
                .map_err(|_| format!("bad cost {token:?} in {line:?}"))?;
            if column == instructions_column {
                instructions = value;
            } else if Some(column) == calls_column {
                calls = value;
            }
        }
        let entry = self
            .totals
            .entry((self.object, self.file, self.function))
            .or_default();
        entry.0 += instructions;
        entry.1 += calls;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A small profile in the shape Valgrind 3.19 writes: compressed names, relative positions,
    /// an inlined file, a call with its inclusive cost, system calls in a column of their own.
    const SMALL: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  server
part: 1

desc: Timerange: Basic block 0 - 100
desc: Trigger: Client Request: dump

positions: line
events: Ir sysCount sysTime
summary: 1210 3 1

ob=(1) /usr/bin/server
fl=(1) /src/crates/server/src/main.rs
fn=(1) server::handle
10 100
+1 50
fi=(2) /home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde_json-1.0.140/src/ser.rs
200 300
fe=(1)
* 10
cob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
cfi=(3) ./malloc/malloc.c
cfn=(2) malloc
calls=2 0
12 700
-1 20

ob=(2)
fl=(3)
fn=(2)
5 500
fl=(4) ./io/../sysdeps/unix/sysv/linux/write.c
fn=(3) write
26 27 3 1
fn=(1)
3 3
";

    #[test]
    fn a_small_profile_gives_each_function_its_own_cost_per_file() {
        let profile = parse(SMALL).unwrap();
        assert_eq!(profile.pid, Some(4242));
        let cost = |function: &str, file_end: &str| {
            profile
                .costs
                .iter()
                .find(|cost| cost.function == function && cost.file.ends_with(file_end))
                .map(|cost| (cost.instructions, cost.system_calls))
        };
        // 100 + 50 + 10 + 20 in main.rs (the 700 of the call to malloc is malloc's, not here).
        assert_eq!(cost("server::handle", "main.rs"), Some((180, 0)));
        // 300 inlined from serde_json.
        assert_eq!(cost("server::handle", "ser.rs"), Some((300, 0)));
        assert_eq!(cost("malloc", "malloc.c"), Some((500, 0)));
        assert_eq!(cost("write", "write.c"), Some((27, 3)));
        // `fn=(1)` after `fl=(4)`: handle's code compiled from write.c's file, as callgrind says.
        assert_eq!(cost("server::handle", "write.c"), Some((3, 0)));
        assert_eq!(profile.instructions(), 180 + 300 + 500 + 27 + 3);
        assert_eq!(profile.system_calls(), 3);
        let libc = profile
            .costs
            .iter()
            .find(|cost| cost.function == "malloc")
            .unwrap();
        assert_eq!(libc.object, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        // Largest first.
        assert_eq!(profile.costs[0].instructions, 500);
    }

    /// A real profile, frozen: `testdata/tiny.rs` built with `rustc -O -C
    /// debuginfo=line-tables-only` and run under `valgrind --tool=callgrind
    /// --collect-systime=yes --toggle-collect=tiny::measured` (Valgrind 3.19, glibc 2.36 with
    /// libc6-dbg), its object path rewritten. The expected figures are callgrind's own: its
    /// `totals:` line and `callgrind_annotate`'s per file and function.
    pub(crate) const TINY: &str = include_str!("testdata/tiny.callgrind.out");

    #[test]
    fn a_frozen_real_profile_sums_to_callgrinds_own_totals() {
        let profile = parse(TINY).unwrap();
        assert_eq!(profile.pid, Some(18518));
        // `totals: 1858 1`
        assert_eq!(profile.instructions(), 1_858);
        assert_eq!(profile.system_calls(), 1);
        let find = |file_end: &str, function: &str| {
            profile
                .costs
                .iter()
                .find(|cost| cost.file.ends_with(file_end) && cost.function == function)
                .map(|cost| (cost.instructions, cost.system_calls, cost.object.as_str()))
        };
        // callgrind_annotate --threshold=100: `228 /build/tiny.rs:tiny::measured [/build/tiny]`.
        assert_eq!(
            find("/build/tiny.rs", "tiny::measured"),
            Some((228, 0, "/build/tiny"))
        );
        // Inlined from core: `139 .../core/src/slice/iter/macros.rs:tiny::measured`.
        assert_eq!(
            find("core/src/slice/iter/macros.rs", "tiny::measured").map(|c| c.0),
            Some(139)
        );
        assert_eq!(
            find("malloc/malloc.c", "_int_free"),
            Some((128, 0, "/usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(find("malloc/malloc.c", "malloc").map(|c| c.0), Some(120));
        // The one system call: `7 1 .../sysv/linux/write.c:write`.
        assert_eq!(
            find("sysv/linux/write.c", "write").map(|c| (c.0, c.1)),
            Some((7, 1))
        );
        // 111 file and function pairs with instructions, as callgrind_annotate lists them.
        assert_eq!(
            profile
                .costs
                .iter()
                .filter(|cost| cost.instructions > 0)
                .count(),
            111
        );
    }

    #[test]
    fn uncompressed_names_and_two_position_columns_are_read() {
        let text = "\
positions: instr line
events: Ir
ob=/bin/x
fl=a.rs
fn=f
0x10 1 7
+2 +1 5
fn=g
0x20 3 1
";
        let profile = parse(text).unwrap();
        let f = profile.costs.iter().find(|c| c.function == "f").unwrap();
        assert_eq!(
            (f.object.as_str(), f.file.as_str(), f.instructions),
            ("/bin/x", "a.rs", 12)
        );
        assert_eq!(profile.instructions(), 13);
        assert_eq!(profile.system_calls(), 0);
    }

    #[test]
    fn what_is_not_a_profile_is_refused_with_the_line() {
        assert_eq!(parse("10 20\n"), Err(ParseError::NoEvents));
        assert_eq!(
            parse("events: Dr\n"),
            Err(ParseError::MissingEvent(INSTRUCTIONS))
        );
        assert!(matches!(
            parse("events: Ir\nfn=(3)\n"),
            Err(ParseError::Line { line: 2, .. })
        ));
        assert!(matches!(
            parse("events: Ir\n10 x\n"),
            Err(ParseError::Line { line: 2, .. })
        ));
        assert!(matches!(
            parse("events: Ir\nwhat is this\n"),
            Err(ParseError::Line { line: 2, .. })
        ));
    }
}
