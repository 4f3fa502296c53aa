//! The start of every server's `main`, the same for each: `--help` and `--version`, logging, the
//! configuration from the environment, and with `PROCESSES` above 1 the hand-over to the
//! supervisor of the copies ([`crate::process_group`]) before any framework runs. Apart from
//! [`crate::config`] so that the configuration does not depend on the processes that read it.

use crate::config::{Config, VariantInfo, help_text, init_logging};

/// The start of every server's `main`: answers `--help` and `--version`, refuses other
/// arguments, sets up logging to stderr, and reads the configuration. On a configuration error it
/// prints one line naming the variable and exits with code 2.
pub fn startup(variant: &VariantInfo) -> Config {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        None => {}
        Some("--help" | "-h") => {
            print!("{}", help_text(variant));
            std::process::exit(0);
        }
        Some("--version" | "-V") => {
            println!("{} {}", variant.name, crate::VERSION);
            std::process::exit(0);
        }
        Some(other) => {
            eprintln!(
                "error: unexpected argument {other:?}; configuration is by environment variables (see --help)"
            );
            std::process::exit(2);
        }
    }
    init_logging();
    let config = match Config::from_env().and_then(|config| config.supported_by(variant)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    let marker = std::env::var(crate::process_group::MEMBER_VARIABLE).ok();
    let role = crate::process_group::Role::of(&config, marker.as_deref());
    crate::process_group::enter(role);
    if let crate::process_group::Role::Supervisor { processes } = role {
        crate::process_group::supervise(&config, processes);
    }
    config
}
