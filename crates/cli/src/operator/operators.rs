//! `alter operator add|list|remove|passwd`: operator accounts for the portal. A password is read
//! from stdin (piped, or typed and ended with Ctrl-D), never from the command line, where other
//! users of the machine could see it.

use std::process::ExitCode;

use alter_sdk::admin::OperatorInfo;
use clap::{Args, Subcommand};

use super::{Connection, output, read_value};
use crate::table::Table;

#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Create an operator account; the password is read from stdin.
    Add {
        /// Sign-in name (lower-case letters, digits, '.', '_', '-').
        username: String,
    },
    /// List operator accounts.
    List,
    /// Remove an operator account (its portal sessions stop working).
    Remove {
        /// Sign-in name.
        username: String,
    },
    /// Set an operator's password, read from stdin (its portal sessions stop working).
    Passwd {
        /// Sign-in name.
        username: String,
    },
}

pub async fn operator(args: OperatorArgs) -> ExitCode {
    let json = args.connection.json;
    args.connection
        .run(async |client| match args.command {
            OperatorCommand::Add { username } => {
                let password = read_value()?;
                let added = client.add_operator(&username, &password).await?;
                Ok(output(json, &added, || {
                    operators_table(std::slice::from_ref(&added))
                }))
            }
            OperatorCommand::List => {
                let operators = client.list_operators().await?;
                Ok(output(json, &operators, || operators_table(&operators)))
            }
            OperatorCommand::Remove { username } => {
                let removed = client.remove_operator(&username).await?;
                Ok(output(json, &removed, || {
                    format!("removed operator {username}")
                }))
            }
            OperatorCommand::Passwd { username } => {
                let password = read_value()?;
                let changed = client.set_operator_password(&username, &password).await?;
                Ok(output(json, &changed, || {
                    format!("changed the password of operator {username}")
                }))
            }
        })
        .await
}

fn operators_table(operators: &[OperatorInfo]) -> String {
    let mut table = Table::new(["ID", "USERNAME", "CREATED", "PASSWORD CHANGED"]);
    for operator in operators {
        table.row([
            operator.id.as_str(),
            operator.username.as_str(),
            operator.created_at.as_str(),
            operator.password_changed_at.as_str(),
        ]);
    }
    table.render()
}
