//! `confab user import FILE|-`: bulk provisioning from a CSV file. This module owns reading
//! the file (RFC 4180 CSV with a header row, line numbers for every message) and reporting;
//! what a row must be and how the users are stored is `confab_ops::users`' import
//! ([`users::check_import`], [`users::apply_import`]).
//!
//! Every problem of the file is reported in one run, those of its CSV form and those of its
//! rows together, in line order, and then nothing is changed. Passwords never appear in a
//! message.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::users::{self, ImportError, ImportOptions, ImportReport, ImportRow, RowProblem};

use crate::cli::{DeploymentArgs, UserImportArgs};
use crate::manage::{self, print, print_json, shell_word, warn, Failure};

/// How many line numbers a warning lists before "…".
const LISTED_LINES: usize = 10;

/// The columns a file may have.
const ADDRESS: &str = "address";
const PASSWORD: &str = "password";
const DISPLAY_NAME: &str = "display_name";

/// Runs `confab user import`.
pub fn run(deployment: &DeploymentArgs, args: &UserImportArgs, json: bool) -> ExitCode {
    let stdin = args.file.as_os_str() == "-";
    let shown = if stdin {
        "standard input".to_owned()
    } else {
        shell_word(&args.file)
    };
    let text = match read(&args.file, stdin, &shown) {
        Ok(text) => text,
        Err(failure) => return failure.report(),
    };
    let parsed = match parse(&text) {
        Ok(parsed) => parsed,
        Err(header) => return Failure::Failed(format!("{shown}: {header}")).report(),
    };
    if parsed.rows.is_empty() && parsed.problems.is_empty() {
        return Failure::Failed(format!(
            "{shown} has no users to import, only the header; add one row per user: \
             address,password[,display_name]"
        ))
        .report();
    }
    let options = ImportOptions {
        pool: args.pool.clone(),
        skip_existing: args.skip_existing,
    };
    let Parsed { rows, mut problems } = parsed;
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::ManageUsers)?;
        let checked = users::check_import(&store, rows, &options).await;
        let plan = match checked {
            Ok(plan) if problems.is_empty() => plan,
            Ok(_) => return Err(rows_failure(&shown, problems)),
            Err(ImportError::Rows(more)) => {
                problems.extend(more);
                return Err(rows_failure(&shown, problems));
            }
            Err(e) => return Err(Failure::Failed(e.to_string())),
        };
        let weak = plan.weak_passwords();
        if !weak.is_empty() {
            warn(&weak_warning(weak));
        }
        let report = users::apply_import(&store, &ctx, plan)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        if json {
            return print_json(&report);
        }
        print(&summary(&report, (!stdin).then_some(shown.as_str())))
    })
}

/// The input as text: the file, or all of standard input.
fn read(file: &Path, stdin: bool, shown: &str) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    let result = if stdin {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        warn_if_readable_by_others(file, shown);
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    if let Err(e) = result {
        return Err(Failure::Failed(format!(
            "cannot read {shown}: {e}; give the path of a CSV file, or - for standard input"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        Failure::Failed(format!(
            "{shown} is not UTF-8 text (line {line}); save it as UTF-8 CSV and import it again"
        ))
    })
}

/// Passwords in a file others can read are as good as published: say so, without refusing
/// (the operator may be about to delete it).
#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path, shown: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        if meta.permissions().mode() & 0o044 != 0 {
            warn(&format!(
                "{shown} holds passwords and other users of this machine can read it; \
                 `chmod 600` it, and delete it once imported"
            ));
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &Path, _shown: &str) {}

fn rows_failure(shown: &str, mut problems: Vec<RowProblem>) -> Failure {
    problems.sort_by_key(|p| p.line);
    let mut text = format!(
        "{shown}: {} row(s) cannot be imported; nothing was changed. Fix them and import the \
         file again:",
        problems.len()
    );
    for p in &problems {
        text.push_str(&format!("\n  line {}: {}", p.line, p.problem));
    }
    Failure::Failed(text)
}

fn weak_warning(lines: &[u64]) -> String {
    let mut listed: Vec<String> = lines
        .iter()
        .take(LISTED_LINES)
        .map(u64::to_string)
        .collect();
    if lines.len() > LISTED_LINES {
        listed.push("…".to_owned());
    }
    format!(
        "{} password(s) have fewer than {} characters (line {}); anyone who can reach the \
         server can try to guess them: set longer ones with `confab user passwd`",
        lines.len(),
        confab_ops::RECOMMENDED_LENGTH,
        listed.join(", ")
    )
}

fn summary(report: &ImportReport, file: Option<&str>) -> String {
    let mut text = format!("imported {} users on pool {}", report.imported, report.pool);
    if report.skipped > 0 {
        text.push_str(&format!(
            "; {} existing user(s) left as they were",
            report.skipped
        ));
    }
    text.push('\n');
    if let Some(file) = file {
        text.push_str(&format!(
            "{file} holds their passwords in plain text: delete it, or keep it where only \
             administrators can read it\n"
        ));
    }
    text
}

/// The rows of a file, and the problems of its CSV form (a row with a problem is left out).
#[derive(Debug, Default)]
struct Parsed {
    rows: Vec<ImportRow>,
    problems: Vec<RowProblem>,
}

/// Where each column is.
struct Columns {
    address: usize,
    password: usize,
    display_name: Option<usize>,
    count: usize,
}

/// Reads the CSV text: the header row, then the users. A header that cannot be used is the
/// error (nothing else can be read without it).
fn parse(text: &str) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Records::new(text);
    let mut parsed = Parsed::default();
    let columns = loop {
        match records.next() {
            None => {
                return Err(format!(
                    "the file is empty; its first line must be the header row \
                     {ADDRESS},{PASSWORD}[,{DISPLAY_NAME}], then one user a line"
                ))
            }
            Some(Record { fields: Ok(f), .. }) if is_blank(&f) => continue,
            Some(Record { line, fields }) => {
                break header(line, fields.map_err(|p| format!("line {line}: {p}"))?)?
            }
        }
    };
    for Record { line, fields } in records {
        let fields = match fields {
            Ok(f) if is_blank(&f) => continue,
            Ok(f) => f,
            Err(problem) => {
                parsed.problems.push(RowProblem { line, problem });
                continue;
            }
        };
        // A row may leave out a trailing display name.
        let short_ok =
            columns.display_name == Some(columns.count - 1) && fields.len() == columns.count - 1;
        if fields.len() != columns.count && !short_ok {
            parsed.problems.push(RowProblem {
                line,
                problem: format!(
                    "{} field(s) where the header has {}; quote a field that holds a comma \
                     (\"like, this\")",
                    fields.len(),
                    columns.count
                ),
            });
            continue;
        }
        let mut fields = fields.into_iter().map(Some).collect::<Vec<_>>();
        let mut take = |i: usize| fields.get_mut(i).and_then(Option::take);
        parsed.rows.push(ImportRow {
            line,
            address: take(columns.address).unwrap_or_default(),
            password: take(columns.password).unwrap_or_default(),
            display_name: columns.display_name.and_then(&mut take),
        });
    }
    Ok(parsed)
}

fn is_blank(fields: &[String]) -> bool {
    fields.len() == 1 && fields[0].trim().is_empty()
}

fn header(line: u64, names: Vec<String>) -> Result<Columns, String> {
    let wanted = format!("{ADDRESS},{PASSWORD}[,{DISPLAY_NAME}]");
    if names.iter().any(|n| n.contains('@')) {
        return Err(format!(
            "line {line} must be the header row {wanted}, not a user; add the header as the \
             first line"
        ));
    }
    let (mut address, mut password, mut display_name) = (None, None, None);
    for (i, name) in names.iter().enumerate() {
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            ADDRESS => &mut address,
            PASSWORD => &mut password,
            DISPLAY_NAME => &mut display_name,
            other => {
                return Err(format!(
                    "line {line}: unknown column '{other}'; the header row names the columns \
                     {wanted}"
                ))
            }
        };
        if slot.replace(i).is_some() {
            return Err(format!(
                "line {line}: the column '{}' is named twice; name each column once",
                name.trim()
            ));
        }
    }
    match (address, password) {
        (Some(address), Some(password)) => Ok(Columns {
            address,
            password,
            display_name,
            count: names.len(),
        }),
        _ => Err(format!(
            "line {line}: the header row must name the columns {wanted}; the columns \
             '{ADDRESS}' and '{PASSWORD}' are required"
        )),
    }
}

/// One CSV record: the line it starts on, and its fields or what is wrong with it.
struct Record {
    line: u64,
    fields: Result<Vec<String>, String>,
}

/// The records of CSV text (RFC 4180: fields separated by commas, records by CR LF or LF, a
/// field in double quotes may hold commas, line breaks and doubled quotes). A malformed
/// record is reported and skipped to the end of its line.
struct Records<'a> {
    rest: std::iter::Peekable<std::str::Chars<'a>>,
    line: u64,
}

impl<'a> Records<'a> {
    fn new(text: &'a str) -> Self {
        Records {
            rest: text.chars().peekable(),
            line: 1,
        }
    }

    /// Consumes a line end (LF, or CR LF) if one comes next.
    fn line_end(&mut self) -> bool {
        match self.rest.peek() {
            Some('\n') => {
                self.rest.next();
                self.line += 1;
                true
            }
            Some('\r') => {
                let mut ahead = self.rest.clone();
                ahead.next();
                if ahead.peek() == Some(&'\n') {
                    self.rest.next();
                    self.rest.next();
                    self.line += 1;
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    /// Skips what is left of a malformed record's line.
    fn skip_line(&mut self) {
        while self.rest.peek().is_some() {
            if self.line_end() {
                return;
            }
            self.rest.next();
        }
    }

    fn quoted(&mut self, start: u64) -> Result<String, String> {
        let mut field = String::new();
        loop {
            match self.rest.next() {
                None => {
                    return Err(format!(
                        "a quoted field opened on line {start} is never closed; end it with \
                         a double quote (a quote inside it is written twice: \"\")"
                    ))
                }
                Some('"') if self.rest.peek() == Some(&'"') => {
                    self.rest.next();
                    field.push('"');
                }
                Some('"') => return Ok(field),
                Some('\n') => {
                    self.line += 1;
                    field.push('\n');
                }
                Some(c) => field.push(c),
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.rest.peek()?;
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let field = if self.rest.peek() == Some(&'"') {
                self.rest.next();
                match self.quoted(line) {
                    Ok(field) => field,
                    Err(problem) => {
                        return Some(Record {
                            line,
                            fields: Err(problem),
                        })
                    }
                }
            } else {
                let mut field = String::new();
                while let Some(&c) = self.rest.peek() {
                    if c == ',' || c == '\n' || (c == '\r' && self.at_crlf()) {
                        break;
                    }
                    field.push(c);
                    self.rest.next();
                }
                field
            };
            fields.push(field);
            match self.rest.peek().copied() {
                None => break,
                Some(',') => {
                    self.rest.next();
                }
                Some(_) if self.line_end() => break,
                Some(_) => {
                    let problem = format!(
                        "text after the closing quote of field {}; a quoted field ends at a \
                         comma or the end of the line (a quote inside it is written twice: \
                         \"\")",
                        fields.len()
                    );
                    self.skip_line();
                    return Some(Record {
                        line,
                        fields: Err(problem),
                    });
                }
            }
        }
        Some(Record {
            line,
            fields: Ok(fields),
        })
    }
}

impl Records<'_> {
    fn at_crlf(&self) -> bool {
        let mut ahead = self.rest.clone();
        ahead.next() == Some('\r') && ahead.next() == Some('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(u64, String, String, Option<String>)> {
        let parsed = parse(text).expect("a usable header");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        parsed
            .rows
            .into_iter()
            .map(|r| (r.line, r.address, r.password, r.display_name))
            .collect()
    }

    fn row(line: u64, a: &str, p: &str, d: Option<&str>) -> (u64, String, String, Option<String>) {
        (line, a.into(), p.into(), d.map(Into::into))
    }

    #[test]
    fn plain_quoted_and_multiline_fields() {
        let text = "\u{feff}Address, Password ,display_name\r\n\
                    alice@x,secret one,Alice\r\n\
                    \r\n\
                    \"bob@x\",\"a, \"\"quoted\"\" one\",\"Bob\nSecond line\"\n\
                    carol@x,pw,\n\
                    dave@x,pw";
        assert_eq!(
            rows(text),
            [
                row(2, "alice@x", "secret one", Some("Alice")),
                row(4, "bob@x", "a, \"quoted\" one", Some("Bob\nSecond line")),
                row(6, "carol@x", "pw", Some("")),
                row(7, "dave@x", "pw", None),
            ]
        );
    }

    #[test]
    fn columns_in_any_order_and_spaces_kept_in_passwords() {
        assert_eq!(
            rows("password,address\n  two spaces ,a@x\n"),
            [row(2, "a@x", "  two spaces ", None)]
        );
    }

    #[test]
    fn bad_records_are_reported_with_their_lines_and_skipped() {
        let text = "address,password\n\
                    a@x,one,two,three\n\
                    \"b@x\"junk,pw\n\
                    c@x,pw\n\
                    \"d@x,pw\n";
        let parsed = parse(text).expect("a usable header");
        let lines: Vec<u64> = parsed.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 5], "{:?}", parsed.problems);
        assert!(parsed.problems[0].problem.contains("4 field(s)"));
        assert!(parsed.problems[1].problem.contains("closing quote"));
        assert!(parsed.problems[2].problem.contains("never closed"));
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].line, 4);
    }

    #[test]
    fn headers_that_cannot_be_used() {
        for (text, fragment) in [
            ("", "empty"),
            ("\n\n", "empty"),
            ("alice@x,pw\n", "must be the header row"),
            ("address,pw\n", "unknown column 'pw'"),
            ("address,address,password\n", "named twice"),
            ("address,display_name\n", "are required"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(fragment), "{text:?}: {error}");
        }
    }
}
