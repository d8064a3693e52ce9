//! What a management command reads from the operator: a password — one line of standard input
//! with `--password-stdin`, or typed twice at the terminal without echo — and a yes/no answer.
//! A password is never taken from the command line, where `ps` and shell history show it.
//!
//! Whether a prompt is possible is decided before anything else happens ([`password_source`],
//! [`confirmation`]): a script without a terminal gets a usage error naming the flag to use,
//! and nothing is opened or changed.

use std::io::{BufRead, IsTerminal, Read, Write};

use confab_ops::{Password, MAX_LENGTH};
use confab_store::Address;

use crate::manage::Failure;

/// Where a password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// One line of standard input.
    Stdin,
    /// The terminal, twice, without echo.
    Terminal,
}

/// Where a password will come from: standard input with `--password-stdin`, else the
/// terminal, which standard input must then be. `command` (`user add alice@localhost`) is
/// what the hint shows to run instead.
pub fn password_source(password_stdin: bool, command: &str) -> Result<PasswordSource, Failure> {
    if password_stdin {
        Ok(PasswordSource::Stdin)
    } else if std::io::stdin().is_terminal() {
        Ok(PasswordSource::Terminal)
    } else {
        Err(Failure::Usage(format!(
            "standard input is not a terminal, so the password cannot be prompted for; pass it \
             on standard input with --password-stdin, e.g. \
             `printf '%s\\n' \"$PASSWORD\" | confab {command} --password-stdin`"
        )))
    }
}

/// Reads the password for `address`.
pub fn read_password(source: PasswordSource, address: &Address) -> Result<Password, Failure> {
    let text = match source {
        PasswordSource::Stdin => read_stdin_line()?,
        PasswordSource::Terminal => {
            let mut terminal = HiddenTerminal::open()?;
            let first = terminal.ask(&format!("Password for {address}: "))?;
            if first.is_empty() {
                return Err(Failure::Failed(
                    "no password given; nothing changed".to_owned(),
                ));
            }
            let second = terminal.ask("Repeat the password: ")?;
            if first != second {
                return Err(Failure::Failed(
                    "the two passwords differ; nothing changed".to_owned(),
                ));
            }
            first
        }
    };
    Ok(Password::new(text)?)
}

/// The controlling terminal with its echo switched off for as long as this value lives.
///
/// Echo goes off before the first prompt is shown and comes back only after the last answer is
/// read, so a line typed as soon as the prompt appears — by a fast typist, or by a test driving
/// a pseudo-terminal — is never shown. (Switching echo off after printing the prompt, as
/// `prompt, then read without echo` helpers do, leaves a window in which it is.)
struct HiddenTerminal {
    reader: std::io::BufReader<std::fs::File>,
    writer: std::fs::File,
    saved: rustix::termios::Termios,
}

impl HiddenTerminal {
    fn open() -> Result<HiddenTerminal, Failure> {
        let failed =
            |e: &dyn std::fmt::Display| Failure::Failed(format!("cannot use the terminal: {e}"));
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|e| failed(&e))?;
        let saved = rustix::termios::tcgetattr(&tty).map_err(|e| failed(&e))?;
        let mut hidden = saved.clone();
        hidden.local_modes &= !rustix::termios::LocalModes::ECHO;
        // The Enter key still moves to the next line.
        hidden.local_modes |= rustix::termios::LocalModes::ECHONL;
        rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Flush, &hidden)
            .map_err(|e| failed(&e))?;
        let writer = tty.try_clone().map_err(|e| failed(&e))?;
        Ok(HiddenTerminal {
            reader: std::io::BufReader::new(tty),
            writer,
            saved,
        })
    }

    /// Shows `prompt` and reads one line, without its line break.
    fn ask(&mut self, prompt: &str) -> Result<String, Failure> {
        let failed = |e: std::io::Error| {
            Failure::Failed(format!("cannot read the password from the terminal: {e}"))
        };
        self.writer
            .write_all(prompt.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(failed)?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).map_err(failed)? == 0 {
            return Err(Failure::Failed(
                "the terminal closed before a password was typed; nothing changed".to_owned(),
            ));
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(line)
    }
}

impl Drop for HiddenTerminal {
    fn drop(&mut self) {
        // Best effort: there is nothing better to do with a terminal that cannot be restored.
        let _ = rustix::termios::tcsetattr(
            self.reader.get_ref(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// The password on standard input: everything up to the end, less one trailing line break.
/// Anything longer than a password can be is refused without reading further.
fn read_stdin_line() -> Result<String, Failure> {
    // A character is at most 4 octets in UTF-8, plus CR LF, plus one to notice more.
    let limit = 4 * MAX_LENGTH + 3;
    let mut octets = Vec::new();
    std::io::stdin()
        .lock()
        .take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut octets)
        .map_err(|e| {
            Failure::Failed(format!("cannot read the password from standard input: {e}"))
        })?;
    if octets.len() >= limit {
        return Err(Failure::Failed(format!(
            "standard input holds more than a password (at most {MAX_LENGTH} characters on one \
             line); nothing changed"
        )));
    }
    let mut text = String::from_utf8(octets).map_err(|_| {
        Failure::Failed(
            "the password on standard input is not UTF-8 text; nothing changed".to_owned(),
        )
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Whether a destructive command must ask before acting: not with `--yes`; with a terminal,
/// yes; without either, a usage error that names `--yes`.
pub fn confirmation(yes: bool, what: &str) -> Result<bool, Failure> {
    if yes {
        Ok(false)
    } else if std::io::stdin().is_terminal() {
        Ok(true)
    } else {
        Err(Failure::Usage(format!(
            "standard input is not a terminal, so {what} cannot be confirmed; add --yes to go \
             ahead without asking"
        )))
    }
}

/// Asks `question` on standard error and reads the answer from standard input: true for `y`
/// or `yes` in any case, false for anything else, an empty line or the end of input.
pub fn confirm(question: &str) -> Result<bool, Failure> {
    let mut err = std::io::stderr().lock();
    let asked = write!(err, "{question} [y/N] ").and_then(|()| err.flush());
    asked.map_err(|e| Failure::Failed(format!("cannot ask for confirmation: {e}")))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
