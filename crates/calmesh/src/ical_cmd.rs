//! `calmesh ical inspect|expand`.

use crate::cli::IcalCommand;
use anyhow::Context as _;
use calmesh_core::event::{RDate, Status, Transparency};
use calmesh_core::hash::item_hash;
use calmesh_core::ical::{Parsed, Problem, parse_calendar};
use calmesh_core::recur::{ExpandOptions, Window};
use calmesh_core::time::{EventTime, resolve_local};
use calmesh_core::{Item, ItemId};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

/// Exit status for input that cannot be used at all.
const UNUSABLE: u8 = 2;

pub fn run(command: IcalCommand) -> anyhow::Result<ExitCode> {
    match command {
        IcalCommand::Inspect { file, json } => {
            let Some(parsed) = load(&file)? else {
                return Ok(ExitCode::from(UNUSABLE));
            };
            inspect(&parsed, json)
        }
        IcalCommand::Expand {
            file,
            from,
            to,
            tz,
            max_instances,
            json,
        } => {
            let Ok(zone) = tz.parse::<Tz>() else {
                eprintln!("error: --tz {tz:?} is not an IANA time zone");
                return Ok(ExitCode::from(UNUSABLE));
            };
            let window = match (bound(&from, zone), bound(&to, zone)) {
                (Some(from), Some(to)) => Window::new(from, to),
                (None, _) => {
                    return usage(&format!("--from {from:?} is not YYYY-MM-DD or RFC 3339"));
                }
                (_, None) => return usage(&format!("--to {to:?} is not YYYY-MM-DD or RFC 3339")),
            };
            let window = match window {
                Ok(window) => window,
                Err(err) => return usage(&err.to_string()),
            };
            let Some(parsed) = load(&file)? else {
                return Ok(ExitCode::from(UNUSABLE));
            };
            let options = ExpandOptions {
                max_instances,
                floating_zone: zone,
            };
            expand(&parsed, &window, &options, json)
        }
    }
}

fn usage(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(UNUSABLE))
}

/// A window bound: a date is midnight in `zone`.
fn bound(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Some(resolve_local(zone, date.and_time(NaiveTime::MIN)));
    }
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|instant| instant.with_timezone(&Utc))
}

/// Reads and parses the file; `None` (after saying why) when it is unusable.
fn load(file: &Path) -> anyhow::Result<Option<Parsed>> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(file).map(|data| bytes = data)
    };
    if let Err(err) = read {
        eprintln!("error: cannot read {}: {err}", file.display());
        return Ok(None);
    }
    match parse_calendar(&bytes) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(err) => {
            eprintln!("error: {}: {err}", file.display());
            Ok(None)
        }
    }
}

#[derive(Serialize)]
struct ProblemDto {
    uid: Option<String>,
    line: u32,
    message: String,
}

impl From<&Problem> for ProblemDto {
    fn from(problem: &Problem) -> Self {
        Self {
            uid: problem.uid.as_ref().map(ToString::to_string),
            line: problem.line,
            message: problem.message.clone(),
        }
    }
}

fn report(problems: &[Problem]) {
    for problem in problems {
        eprintln!("warning: {problem}");
    }
}

#[derive(Serialize)]
struct InspectDto {
    items: Vec<ItemDto>,
    problems: Vec<ProblemDto>,
}

#[derive(Serialize)]
struct ItemDto {
    uid: String,
    summary: Option<String>,
    start: Option<String>,
    end: Option<String>,
    all_day: bool,
    tzid: Option<String>,
    rrule: Option<String>,
    rdates: Vec<String>,
    exdates: Vec<String>,
    overrides: Vec<String>,
    status: Option<String>,
    transparency: Option<String>,
    hash: String,
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Tentative => "TENTATIVE".into(),
        Status::Confirmed => "CONFIRMED".into(),
        Status::Cancelled => "CANCELLED".into(),
        Status::Other(other) => other.clone(),
    }
}

fn item_dto(item: &Item) -> ItemDto {
    let primary = item.primary();
    let master = item.master.as_ref();
    ItemDto {
        uid: item.uid.to_string(),
        summary: primary.and_then(|event| event.summary.clone()),
        start: primary.map(|event| event.start.to_rfc3339()),
        end: primary.map(|event| event.effective_end().to_rfc3339()),
        all_day: primary.is_some_and(|event| event.is_all_day()),
        tzid: primary
            .and_then(|event| event.start.zone())
            .map(|zone| zone.tzid().to_string()),
        rrule: master
            .and_then(|event| event.rrule.as_ref())
            .map(ToString::to_string),
        rdates: master
            .map(|event| {
                event
                    .rdates
                    .iter()
                    .map(|rdate| match rdate {
                        RDate::Time(time) => time.to_rfc3339(),
                        RDate::Period { start, end } => {
                            format!("{}/{}", start.to_rfc3339(), end.to_rfc3339())
                        }
                        RDate::PeriodDuration { start, duration } => {
                            format!("{}/{duration}", start.to_rfc3339())
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        exdates: master
            .map(|event| event.exdates.iter().map(EventTime::to_rfc3339).collect())
            .unwrap_or_default(),
        overrides: item
            .overrides
            .iter()
            .filter_map(|over| over.recurrence_id.as_ref())
            .map(|rid| rid.time.to_rfc3339())
            .collect(),
        status: primary
            .and_then(|event| event.status.as_ref())
            .map(status_text),
        transparency: primary
            .and_then(|event| event.transparency)
            .map(|transparency| {
                match transparency {
                    Transparency::Opaque => "OPAQUE",
                    Transparency::Transparent => "TRANSPARENT",
                }
                .to_string()
            }),
        hash: item_hash(item).to_string(),
    }
}

fn inspect(parsed: &Parsed, json: bool) -> anyhow::Result<ExitCode> {
    report(&parsed.problems);
    let items: Vec<ItemDto> = parsed.calendar.items.iter().map(item_dto).collect();
    let mut out = std::io::stdout().lock();
    if json {
        let dto = InspectDto {
            items,
            problems: parsed.problems.iter().map(ProblemDto::from).collect(),
        };
        serde_json::to_writer_pretty(&mut out, &dto).context("writing JSON")?;
        writeln!(out)?;
    } else {
        for item in items {
            writeln!(out, "{}", item.uid)?;
            writeln!(
                out,
                "  summary:  {}",
                item.summary.as_deref().unwrap_or("-")
            )?;
            writeln!(
                out,
                "  when:     {} .. {}{}",
                item.start.as_deref().unwrap_or("-"),
                item.end.as_deref().unwrap_or("-"),
                if item.all_day { " (all day)" } else { "" }
            )?;
            if let Some(tzid) = &item.tzid {
                writeln!(out, "  tzid:     {tzid}")?;
            }
            if let Some(rrule) = &item.rrule {
                writeln!(out, "  rrule:    {rrule}")?;
            }
            for (label, values) in [
                ("rdates", &item.rdates),
                ("exdates", &item.exdates),
                ("overrides", &item.overrides),
            ] {
                if !values.is_empty() {
                    writeln!(out, "  {label:<9} {}", values.join(", "))?;
                }
            }
            writeln!(out, "  hash:     {}", item.hash)?;
        }
        writeln!(
            out,
            "{} items, {} problems",
            parsed.calendar.items.len(),
            parsed.problems.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ExpandDto {
    instances: Vec<InstanceDto>,
    problems: Vec<ProblemDto>,
}

#[derive(Serialize)]
struct InstanceDto {
    uid: String,
    recurrence_id: Option<String>,
    start: String,
    end: String,
    summary: Option<String>,
}

fn expand(
    parsed: &Parsed,
    window: &Window,
    options: &ExpandOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut problems = parsed.problems.clone();
    let mut rows: Vec<(DateTime<Utc>, &ItemId, InstanceDto)> = Vec::new();
    for (idx, item) in parsed.calendar.items.iter().enumerate() {
        let line = parsed.item_lines.get(idx).copied().unwrap_or(0);
        match item.expand(window, options) {
            Ok(expansion) => {
                if expansion.truncated {
                    problems.push(Problem {
                        uid: Some(item.uid.clone()),
                        line,
                        message: format!(
                            "more than {} instances; the rest were cut",
                            options.max_instances
                        ),
                    });
                }
                for instance in expansion.instances {
                    rows.push((
                        instance.start_at,
                        &item.uid,
                        InstanceDto {
                            uid: item.uid.to_string(),
                            recurrence_id: instance
                                .recurrence_id
                                .as_ref()
                                .map(EventTime::to_rfc3339),
                            start: instance.start.to_rfc3339_at(instance.start_at),
                            end: instance.end.to_rfc3339_at(instance.end_at),
                            summary: instance.event.summary.clone(),
                        },
                    ));
                }
            }
            Err(err) => problems.push(Problem {
                uid: Some(item.uid.clone()),
                line,
                message: err.reason,
            }),
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    problems.sort_by_key(|problem| problem.line);
    report(&problems);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let dto = ExpandDto {
            instances: rows.into_iter().map(|(_, _, dto)| dto).collect(),
            problems: problems.iter().map(ProblemDto::from).collect(),
        };
        serde_json::to_writer(&mut out, &dto).context("writing JSON")?;
        writeln!(out)?;
    } else {
        for (_, _, row) in &rows {
            writeln!(
                out,
                "{:<25} {:<25} {}  {}",
                row.start,
                row.end,
                row.uid,
                row.summary.as_deref().unwrap_or("")
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
