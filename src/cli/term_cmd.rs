//! `erlnode term`: decode ETF bytes into Erlang or Elixir syntax, and encode a term literal.

use std::io::{Read, Write};

use clap::Subcommand;

use crate::term::{Term, decode, encode, encode_compressed, parse_elixir, parse_erlang};

/// `erlnode term ...`
#[derive(Subcommand, Debug)]
pub enum TermCmd {
    /// Print the term in FILE (or stdin with `-` or nothing) in Erlang syntax.
    Decode {
        /// The file holding ETF bytes (`131, ...`); `-` for stdin.
        file: Option<String>,
    },
    /// Write the ETF bytes of TERM (an Erlang literal) to stdout.
    Encode {
        /// The term, e.g. '{set, foo, 123}' (one starting with `-`, like `-1`, is a term too).
        #[arg(allow_hyphen_values = true)]
        term: String,
        /// Compress (COMPRESSED_EXT, zlib level 6).
        #[arg(long)]
        compressed: bool,
    },
}

/// Parses a term literal typed by a person.
pub fn parse(text: &str, elixir: bool) -> Result<Term, String> {
    let parsed = if elixir { parse_elixir(text) } else { parse_erlang(text) };
    parsed.map_err(|e| format!("malformed term literal: {e}"))
}

/// Renders a term for people.
pub fn render(t: &Term, elixir: bool) -> String {
    if elixir { t.elixir().to_string() } else { t.to_string() }
}

pub(super) fn run(cmd: TermCmd, elixir: bool) -> Result<(), String> {
    match cmd {
        TermCmd::Decode { file } => {
            let bytes = match file.as_deref() {
                None | Some("-") => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v).map_err(|e| format!("reading stdin: {e}"))?;
                    v
                }
                Some(path) => std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?,
            };
            let term = decode(&bytes).map_err(|e| format!("not a valid term: {e}"))?;
            println!("{}", render(&term, elixir));
            Ok(())
        }
        TermCmd::Encode { term, compressed } => {
            let t = parse(&term, elixir)?;
            let bytes = if compressed { encode_compressed(&t, 6) } else { encode(&t) };
            std::io::stdout().write_all(&bytes).map_err(|e| format!("writing stdout: {e}"))
        }
    }
}
