//! `alter audit …`: the tamper-evident audit log — list with filters, export as JSON Lines,
//! print signed checkpoints, verify the hash chain (against a checkpoint).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{AuditCheckpointView, AuditEventView, AuditQuery};
use clap::{Args, Subcommand};

use super::{AppScope, Printed, output};
use crate::table::Table;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: AuditCommand,
}

/// Filters shared by `list` and `export`; all narrow.
#[derive(Debug, Clone, Args)]
struct Filters {
    /// Events about this grant.
    #[arg(long)]
    grant: Option<String>,
    /// Events by or about this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Events concerning this end user (app_user_id).
    #[arg(long)]
    user: Option<String>,
    /// This action (credential.released, grant.revoked, …).
    #[arg(long)]
    action: Option<String>,
    /// allow or deny.
    #[arg(long, value_parser = ["allow", "deny"])]
    decision: Option<String>,
    /// At or after (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Before (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Events of calls that carried this W3C trace id (their traceparent).
    #[arg(long)]
    trace: Option<String>,
}

impl Filters {
    fn query(&self, cursor: Option<String>, limit: i64) -> AuditQuery {
        AuditQuery {
            grant: self.grant.clone(),
            agent: self.agent.clone(),
            user: self.user.clone(),
            action: self.action.clone(),
            decision: self.decision.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            trace: self.trace.clone(),
            cursor,
            limit: Some(limit),
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// A page of events, oldest first.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Page size (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// The cursor printed after the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Every matching event as JSON Lines on stdout.
    Export {
        #[command(flatten)]
        filters: Filters,
    },
    /// Print a signed checkpoint of the chain head as one JSON line, to keep outside the
    /// database: `alter audit checkpoint >> /worm/alter-audit-APP.jsonl`.
    Checkpoint,
    /// Walk the hash chain; prints the report and, when it names the first event altered,
    /// removed or reordered, exits 1.
    Verify {
        /// A file of checkpoints, one JSON line each (as `checkpoint` prints them): the chain
        /// must also still reach the furthest one of the app the last line names.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
}

pub async fn audit(args: AuditArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            match args.command {
                AuditCommand::List {
                    filters,
                    limit,
                    cursor,
                } => {
                    let page = client
                        .audit_events(app, &filters.query(cursor, limit))
                        .await?;
                    let text = output(json, &page, || {
                        let mut text = events_table(&page.items);
                        if let Some(next) = &page.next_cursor {
                            text.push_str(&format!("\n\nnext page: --cursor {next}"));
                        }
                        text
                    });
                    Ok(Printed::from(text))
                }
                AuditCommand::Export { filters } => {
                    let mut cursor = None;
                    let mut stdout = BufWriter::new(std::io::stdout().lock());
                    loop {
                        let page = client
                            .audit_events(app, &filters.query(cursor, 1000))
                            .await?;
                        for item in &page.items {
                            let line = serde_json::to_string(item)
                                .map_err(|e| Error::value(e.to_string()))?;
                            writeln!(stdout, "{line}").map_err(|e| Error::value(e.to_string()))?;
                        }
                        match page.next_cursor {
                            Some(next) => cursor = Some(next),
                            None => break,
                        }
                    }
                    stdout.flush().map_err(|e| Error::value(e.to_string()))?;
                    Ok(Printed::from(String::new()))
                }
                AuditCommand::Checkpoint => {
                    let checkpoint = client.audit_checkpoint(app).await?;
                    // One line whatever the output mode: it is meant to be appended to a file.
                    serde_json::to_string(&checkpoint)
                        .map(Printed::from)
                        .map_err(|e| Error::value(e.to_string()))
                }
                AuditCommand::Verify { checkpoint } => {
                    let report = match checkpoint {
                        None => client.verify_audit(app).await?,
                        Some(file) => {
                            let checkpoint = furthest_checkpoint(&file)?;
                            client.verify_audit_against(app, checkpoint).await?
                        }
                    };
                    let text = output(json, &report, || match &report.first_problem {
                        None => match report.checkpoint_seq {
                            None => format!("ok: {} events, the chain verifies", report.events),
                            Some(seq) => format!(
                                "ok: {} events, the chain verifies and reaches the checkpoint at \
                             event {seq}",
                                report.events
                            ),
                        },
                        Some(p) => format!(
                            "BROKEN at event {}{} of app {app}: {}",
                            p.seq,
                            p.event_id
                                .as_deref()
                                .map(|id| format!(" ({id})"))
                                .unwrap_or_default(),
                            p.problem
                        ),
                    });
                    // The report goes to stdout whatever it says, so `--json` stays parseable; a
                    // broken chain then exits 1.
                    let failure = match &report.first_problem {
                        _ if report.ok => None,
                        Some(p) => Some(format!("the audit chain is broken at event {}", p.seq)),
                        None => Some("the audit chain does not verify".to_owned()),
                    };
                    Ok(Printed { text, failure })
                }
            }
        })
        .await
}

/// The checkpoint of a file `alter audit checkpoint` output was appended to that the chain
/// must reach: of the checkpoints of the app its last line names, the one furthest along. Not
/// simply the last line: a checkpoint taken after the log was cut signs the shorter head, and
/// the earlier, longer one still shows the cut.
fn furthest_checkpoint(file: &Path) -> Result<AuditCheckpointView, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::value(format!("cannot read {}: {e}", file.display())))?;
    let checkpoints = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str::<AuditCheckpointView>(line).map_err(|_| {
                Error::value(format!(
                    "line {} of {} is not a checkpoint printed by `alter audit checkpoint`",
                    n + 1,
                    file.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let app = checkpoints
        .last()
        .map(|c| c.app_id.clone())
        .ok_or_else(|| Error::value(format!("{} holds no checkpoint", file.display())))?;
    checkpoints
        .into_iter()
        .filter(|c| c.app_id == app)
        .max_by_key(|c| c.seq)
        .ok_or_else(|| Error::value(format!("{} holds no checkpoint", file.display())))
}

fn events_table(events: &[AuditEventView]) -> String {
    let mut table = Table::new(["SEQ", "AT", "ACTION", "DECISION", "REASON", "TARGET"]);
    for view in events {
        let field = |name: &str| {
            view.event
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_owned()
        };
        let target = view
            .event
            .get("target")
            .and_then(|t| t.get("id"))
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_owned();
        table.row([
            view.seq.to_string().as_str(),
            field("at").as_str(),
            field("action").as_str(),
            field("decision").as_str(),
            field("reason").as_str(),
            target.as_str(),
        ]);
    }
    table.render()
}
