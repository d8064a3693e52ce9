//! A command run on a terminal of its own, for the tests of prompts.

use std::io::Write;
use std::process::{Command, Stdio};

use super::WAIT;

/// A command run on a terminal of its own (a pseudo-terminal made by util-linux's `script`),
/// driven like a person: wait for a prompt, type a line.
pub struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Terminal {
    /// Runs `confab ARGS` on a terminal, or `None` where `script` is missing.
    pub fn confab(args: &[&str]) -> Option<Terminal> {
        let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_confab"))
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &quoted.join(" "), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CONFAB_") {
                cmd.env_remove(name);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: cannot run script(1) for a terminal: {e}");
                return None;
            }
        };
        let input = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Some(Terminal {
            child,
            input,
            output,
            seen: String::new(),
        })
    }

    /// Waits until the terminal has shown `text` (since the last wait).
    pub fn expect(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!(
                    "the terminal never showed {text:?}; it showed:\n{}",
                    self.seen
                ),
            }
        }
        if let Some(at) = self.seen.find(text) {
            self.seen.drain(..at + text.len());
        }
    }

    pub fn type_line(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\r").as_bytes())
            .expect("type");
        self.input.flush().expect("flush");
    }

    /// Waits for the exit and returns the status and everything shown after the last wait.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("exits");
        while let Ok(chunk) = self
            .output
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        (status.code(), self.seen)
    }
}
