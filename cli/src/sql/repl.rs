//! The interactive prompt of `tally sql`: line editing and history
//! (rustyline), statements ended by `;` possibly over several lines, each
//! statement's result or error printed as it completes.
//!
//! `tally> ` starts a statement and `...> ` continues one. A line is added
//! to the text so far; every statement it completes runs, and what follows
//! the last `;` waits for more. On an empty prompt, `\q` (or `exit`,
//! `quit`) quits and `\?` shows help; Ctrl-C discards the unfinished
//! statement, Ctrl-D quits. Completed statements go to the history, which
//! is kept in a file in the data directory between sessions.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::format::{self, OutputFormat};
use super::script;
use crate::util::CliResult;

/// Prompt for a new statement.
const PROMPT: &str = "tally> ";
/// Prompt for the next line of an unfinished statement.
const CONTINUE: &str = "...> ";
/// Most statements the history keeps.
const HISTORY_LEN: usize = 1000;

const HELP: &str = "\
Statements end with ';' and may span lines. Ctrl-C discards the statement
being typed.
  \\q, exit, quit, Ctrl-D   quit
  \\?                       this help";

/// What a line typed on an empty prompt asks for, when it is not SQL.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Quit,
    Help,
    Unknown(&'a str),
}

fn command(line: &str) -> Option<Command<'_>> {
    let t = line.trim();
    match t {
        "\\q" | "\\quit" | "exit" | "quit" => Some(Command::Quit),
        "\\?" | "\\h" | "help" => Some(Command::Help),
        _ if t.starts_with('\\') => Some(Command::Unknown(t)),
        _ => None,
    }
}

/// Runs the prompt until the user quits. Errors of statements are printed
/// and do not end it; the exit status is 0.
pub fn run(
    exec: &mut super::Exec<'_>,
    history: &Path,
    format: OutputFormat,
) -> CliResult<ExitCode> {
    let prompt_err = |e: ReadlineError| format!("cannot run the prompt: {e}");
    let config = Config::builder()
        .max_history_size(HISTORY_LEN)
        .map_err(prompt_err)?
        .history_ignore_dups(true)
        .map_err(prompt_err)?
        .auto_add_history(false)
        .build();
    let mut rl = DefaultEditor::with_config(config).map_err(prompt_err)?;
    match rl.load_history(history) {
        Ok(()) => {}
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "warning: cannot read the history {}: {e}",
            history.display()
        ),
    }
    let mut history_ok = true;
    let mut remember = |rl: &mut DefaultEditor, entry: &str| {
        if rl.add_history_entry(entry).is_ok() && history_ok {
            if let Err(e) = rl.append_history(history) {
                eprintln!(
                    "warning: cannot write the history {}: {e}",
                    history.display()
                );
                history_ok = false;
            }
        }
    };
    println!("tally sql: statements end with ';'. \\q quits, \\? helps.");
    let mut text = String::new();
    loop {
        let prompt = if text.is_empty() { PROMPT } else { CONTINUE };
        let line = match rl.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                text.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(prompt_err(e)),
        };
        if text.is_empty() {
            if let Some(cmd) = command(&line) {
                remember(&mut rl, line.trim());
                match cmd {
                    Command::Quit => break,
                    Command::Help => println!("{HELP}"),
                    Command::Unknown(c) => {
                        eprintln!("unknown command {c}: \\q quits, \\? shows help")
                    }
                }
                continue;
            }
        }
        text.push_str(&line);
        text.push('\n');
        let split = script::split(&text);
        if split.rest > 0 {
            remember(&mut rl, text.get(..split.rest).unwrap_or("").trim());
            for range in split.statements {
                run_statement(exec, &text, range, format)?;
            }
            text.drain(..split.rest);
        }
        if split.rest_is_blank {
            text.clear();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one statement of `text` and prints its result, or its error on
/// stderr.
fn run_statement(
    exec: &mut super::Exec<'_>,
    text: &str,
    range: std::ops::Range<usize>,
    format: OutputFormat,
) -> CliResult<()> {
    let sql = text.get(range.clone()).unwrap_or("");
    match exec(sql) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            let mut shown = format::render(&result, format);
            if format == OutputFormat::Table {
                shown.push('\n');
            }
            out.write_all(shown.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write the result: {e}"))?;
        }
        Err(e) => eprintln!("{}", script::describe_error(&e, text, range.start)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_and_help_are_commands_only_as_a_whole_line() {
        assert_eq!(command(" \\q "), Some(Command::Quit));
        assert_eq!(command("exit"), Some(Command::Quit));
        assert_eq!(command("\\?"), Some(Command::Help));
        assert_eq!(command("\\x"), Some(Command::Unknown("\\x")));
        assert_eq!(command("SELECT 1;"), None);
        assert_eq!(command("exit;"), None);
    }
}
