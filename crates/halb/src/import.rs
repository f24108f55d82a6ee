//! `halb import`: the I/O shell around `halb_import` (files and standard
//! input in, the TOML to a file or standard output, the report on
//! standard error), and halb's own check of the result before it is
//! written.

use clap::Args;
use halb_import::{Advice, Format, Input, Options, Pos, Report, Source};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status: something was not carried over and `--strict` was given.
const EXIT_UNMAPPED: u8 = 1;
/// Exit status: an input could not be parsed, or halb would reject the
/// output (nothing written).
const EXIT_PARSE: u8 = crate::cli::EXIT_CONFIG;
/// Largest input file read (as `halb check-config`).
const MAX_INPUT: u64 = halb_config::DEFAULT_MAX_SIZE;

#[derive(Args)]
pub struct ImportArgs {
    /// FORMAT FILE...: the format (keepalived, ldirectord, heartbeat,
    /// ipvsadm, pacemaker, or auto) then the files (`-` is standard
    /// input); only files when --format is given.
    #[arg(required = true, value_name = "FORMAT FILE")]
    args: Vec<String>,
    /// The format, instead of the first argument (`auto`: guessed from
    /// the first file).
    #[arg(long)]
    format: Option<String>,
    /// Write the TOML here (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Exit 1 when anything was not carried over.
    #[arg(long)]
    strict: bool,
    /// keepalived `-i CONFIG_ID`: which `@ID` conditional lines apply.
    #[arg(long, value_name = "ID")]
    config_id: Option<String>,
    /// The hosts file names resolve through (default /etc/hosts).
    #[arg(long, value_name = "FILE")]
    hosts: Option<String>,
    /// The services file port names resolve through (default /etc/services).
    #[arg(long, value_name = "FILE")]
    services: Option<String>,
    /// ldirectord: import a per-virtual key found unindented into the
    /// block above it (it is reported either way).
    #[arg(long)]
    fold_unindented: bool,
    /// heartbeat: the node of ha.cf this director is (the priorities of
    /// the VRRP instances follow haresources' preferred nodes); default
    /// the first `node` line.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
}

/// Files on disk; globs with the `glob` crate.
struct FsSource;

impl Source for FsSource {
    fn read(&self, path: &str) -> Result<String, String> {
        read_file(Path::new(path))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let paths = glob::glob(pattern).map_err(|e| format!("bad pattern: {e}"))?;
        let mut out = Vec::new();
        for p in paths.take(10_000) {
            let p = p.map_err(|e| e.to_string())?;
            if p.is_file() {
                out.push(p.to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }
}

fn read_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > MAX_INPUT {
        return Err(format!("larger than {MAX_INPUT} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn read_input(name: &str) -> Result<Input, String> {
    if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_INPUT {
            return Err(format!("larger than {MAX_INPUT} bytes"));
        }
        return Ok(Input::new("<stdin>", text));
    }
    Ok(Input::new(name, read_file(Path::new(name))?))
}

fn fail(report: &Report, what: &str) -> ExitCode {
    eprint!("{}", report.render());
    eprintln!("halb import: {what}; nothing was written");
    ExitCode::from(EXIT_PARSE)
}

pub fn run(a: &ImportArgs) -> ExitCode {
    let formats = "keepalived, ldirectord, heartbeat, ipvsadm, pacemaker or auto";
    let (format_name, files) = match &a.format {
        Some(f) => (f.as_str(), &a.args[..]),
        None => (a.args[0].as_str(), &a.args[1..]),
    };
    let explicit = if format_name.eq_ignore_ascii_case("auto") {
        None
    } else {
        match Format::from_name(format_name) {
            Some(f) => Some(f),
            None => {
                eprintln!("halb import: unknown format {format_name:?}: give {formats}");
                return ExitCode::from(EXIT_PARSE);
            }
        }
    };
    if files.is_empty() {
        eprintln!("halb import: no input file (give FILE, or - for standard input)");
        return ExitCode::from(EXIT_PARSE);
    }
    let mut report = Report::default();
    let mut inputs = Vec::new();
    for f in files {
        match read_input(f) {
            Ok(i) => inputs.push(i),
            Err(e) => report.error(
                &Pos::file(f.as_str()),
                "",
                format!("cannot read the file: {e}"),
                Advice::Fix("check the path".to_owned()),
            ),
        }
    }
    if report.has_errors() {
        return fail(&report, "an input cannot be read");
    }
    let format = match explicit {
        Some(f) => f,
        None => match halb_import::guess_format(&inputs[0].text) {
            Some(f) => {
                eprintln!("halb import: {} looks like {f}", inputs[0].name);
                f
            }
            None => {
                report.error(
                    &Pos::file(inputs[0].name.as_str()),
                    "",
                    "cannot tell the format of this file",
                    Advice::Fix(format!(
                        "name it: halb import FORMAT FILE with FORMAT {formats}"
                    )),
                );
                return fail(&report, "unknown format");
            }
        },
    };
    let opts = Options {
        config_id: a.config_id.clone(),
        hosts_file: a.hosts.clone(),
        services_file: a.services.clone(),
        fold_unindented: a.fold_unindented,
        node: a.node.clone(),
    };
    let imported = match halb_import::import(format, &inputs, &FsSource, &opts) {
        Ok(i) => i,
        Err(errors) => {
            let n = errors.findings.len();
            return fail(
                &errors,
                &format!("{n} error{}", if n == 1 { "" } else { "s" }),
            );
        }
    };
    let out_name = a
        .output
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdout>".to_owned());
    let cfg = match halb_import::check(&imported.toml, &out_name) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprint!("{}", imported.report.render());
            eprint!("{}", errors.render());
            eprintln!(
                "halb import: halb would reject what the import wrote (a bug of the importer: \
                 please report it with the input); nothing was written"
            );
            return ExitCode::from(EXIT_PARSE);
        }
    };
    let written = match &a.output {
        Some(path) => write_atomic(path, &imported.toml),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(imported.toml.as_bytes())
                .and_then(|()| out.flush())
        }
    };
    if let Err(e) = written {
        eprint!("{}", imported.report.render());
        eprintln!("halb import: cannot write {out_name}: {e}");
        return ExitCode::FAILURE;
    }
    eprint!("{}", imported.report.render());
    let reals: usize = cfg.services.iter().map(|s| s.reals.len()).sum();
    eprintln!(
        "halb import: wrote {out_name} ({} virtual services, {reals} real servers, {} health checks, \
         {} VRRP instances, {} sync groups, {} resource groups): {}",
        cfg.services.len(),
        cfg.checks.len(),
        cfg.vrrp_instances.len(),
        cfg.vrrp_sync_groups.len(),
        cfg.resource_groups.len(),
        imported.report.summary()
    );
    if a.strict && imported.report.has_unmapped() {
        eprintln!("halb import: --strict: some items were not carried over (above)");
        return ExitCode::from(EXIT_UNMAPPED);
    }
    ExitCode::SUCCESS
}

/// Write through a temporary file in the same directory, then rename:
/// a reader never sees half a file.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "halb.toml".to_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
