//! What `confab serve` tells an operator on the first start of a deployment, when it has just
//! created the management store's defaults: how to add a user, and what a SIP client needs to
//! sign in. Printed on standard error, beside the logs; standard output keeps only the
//! `listening …` lines that scripts read.

use std::fmt::Write;

use confab_server::{ListenUri, Transport};
use confab_store::{Defaults, StoreLocation};

use crate::manage::shell_word;
use crate::settings::{Origin, ServeSettings};

/// The text shown after a first start created `created` in the store at `location`, for a
/// server listening on `listening`.
pub fn next_steps(
    settings: &ServeSettings,
    location: &StoreLocation,
    created: &Defaults,
    listening: &[ListenUri],
    console: Option<&str>,
) -> String {
    let domain = created.domain.as_deref().unwrap_or(&settings.domain);
    let mut made = Vec::new();
    if let Some(d) = &created.domain {
        made.push(format!("the SIP domain {d}"));
    }
    if let Some(p) = &created.pool {
        made.push(format!("the pool {p}"));
    }
    // How later commands find this deployment, unless it is at the default place. A store URL
    // may carry a password: never print it.
    let find = if settings.store.is_some() {
        " --store URL".to_owned()
    } else if settings.origin("data_dir") != Origin::Default {
        format!(" --data-dir {}", shell_word(&settings.data_dir))
    } else {
        String::new()
    };
    let mut text = String::new();
    let with = if made.is_empty() {
        String::new()
    } else {
        format!(" with {}", made.join(" and "))
    };
    let _ = writeln!(
        text,
        "\nFirst start: created the management store at {location}{with}."
    );
    let _ = writeln!(text, "\nNext, add a user:\n");
    let commands = [
        (
            format!("confab user add alice@{domain}{find}"),
            "asks for the password",
        ),
        (
            format!("confab user add alice@{domain} --password-stdin{find}"),
            "reads it from standard input",
        ),
    ];
    let width = commands.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (command, note) in &commands {
        let _ = writeln!(text, "    {command:<width$}   # {note}");
    }
    let _ = writeln!(text, "\nThen set up a SIP client with:\n");
    let mut rows = Vec::new();
    if let Some((first, others)) = listening.split_first() {
        rows.push(("SIP server (registrar, outbound proxy)", reach(first)));
        for other in others {
            rows.push(("or", reach(other)));
        }
    }
    rows.push(("domain (realm)", domain.to_owned()));
    rows.push(("user name", "alice".to_owned()));
    rows.push(("password", "the one given to `confab user add`".to_owned()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        let _ = writeln!(text, "    {key:<width$}  {value}");
    }
    if let Some(url) = console {
        let _ = writeln!(
            text,
            "\nThe web console is at {url}/console: sign in as administrator {} with \
             the token in {}.",
            confab_ops::control::FIRST_ADMINISTRATOR,
            settings
                .data_dir
                .join(crate::change::CREDENTIALS_FILE)
                .display()
        );
    }
    text
}

/// How a client reaches a listener: `127.0.0.1:5060 (UDP)`, or the URL of a WebSocket.
fn reach(uri: &ListenUri) -> String {
    let host = if uri.addr.ip().is_unspecified() {
        format!("<this host's address>:{}", uri.addr.port())
    } else {
        uri.addr.to_string()
    };
    match uri.transport {
        Transport::Ws | Transport::Wss => format!("{}://{host}", uri.transport.scheme()),
        t => format!("{host} ({})", t.scheme().to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings(args: &[&str]) -> ServeSettings {
        let cli = Cli::try_parse_from(args).expect("valid");
        let Command::Serve(serve) = &cli.command else {
            panic!("serve");
        };
        let origin = |key: &'static str| Origin::Flag(key);
        let given = crate::settings::Given {
            deployment: &cli.deployment,
            serve,
            origin: &origin,
        };
        crate::settings::resolve(&given).expect("settings")
    }

    #[test]
    fn tells_how_to_add_a_user_and_set_up_a_client() {
        let s = settings(&["confab", "serve", "--data-dir", "/srv/my data"]);
        let created = Defaults {
            domain: Some("localhost".into()),
            pool: Some("default".into()),
        };
        let listening = [
            "udp://127.0.0.1:5060".parse().expect("uri"),
            "ws://0.0.0.0:8080".parse().expect("uri"),
        ];
        let location = StoreLocation::in_data_dir(&s.data_dir);
        let text = next_steps(&s, &location, &created, &listening, None);
        for part in [
            "sqlite:/srv/my data/confab.db",
            "the SIP domain localhost and the pool default",
            "confab user add alice@localhost --password-stdin --data-dir '/srv/my data'",
            "127.0.0.1:5060 (UDP)",
            "ws://<this host's address>:8080",
            "domain (realm)                          localhost",
            "user name",
        ] {
            assert!(text.contains(part), "lacks {part:?}:\n{text}");
        }
    }

    #[test]
    fn never_prints_the_store_url() {
        let s = settings(&[
            "confab",
            "serve",
            "--store",
            "postgres://confab:hunter2@db/confab",
        ]);
        let location =
            StoreLocation::parse_url("postgres://confab:hunter2@db/confab").expect("location");
        let text = next_steps(&s, &location, &Defaults::default(), &[], None);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("--store URL"), "{text}");
    }
}
