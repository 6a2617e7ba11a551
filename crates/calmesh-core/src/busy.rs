//! The busy rule's planner: a pure function from the cached calendars of a
//! busy group and the rule's links to the writes that make every calendar
//! hold exactly one private block per busy event of the others.
//!
//! How sources become blocks:
//! - A single event becomes one single block with the same start and end.
//! - A series master becomes one *recurring* block: the same start, end,
//!   RRULE, RDATEs and EXDATEs, plus an EXDATE for every exception the source
//!   has. Each busy exception (a moved or changed instance) becomes a single
//!   block of its own; a cancelled, free or declined exception has none. So a
//!   series costs one write, not one per instance, and every block is a
//!   resource with a deterministic id (no provider instance ids to look up).
//! - Blocks carry [`TAG_RULE`] and [`TAG_SOURCE`]; anything tagged with
//!   [`TAG_RULE`] is never a source (no loops, invariant 3).
//!
//! What is written is remembered per (source entry, target calendar) as a
//! [`PlanLink`] with the hash of the block; an unchanged hash means no write.
//! Changed content updates the block in place (a moved event moves its block).
//!
//! Safety: only entries tagged with this rule, or named by its links, are ever
//! updated or deleted (invariant 1); target ids are derived from the link key
//! and a generation, so a retried create lands on the same id (invariant 2);
//! a plan that would delete more than [`MassDeleteGuard`] allows is held back
//! (invariant 4).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::event::{Class, Event, PartStat, Status, Transparency};
use crate::hash::event_hash;
use crate::ids::{CalendarId, ItemId, RuleId};
use crate::recur::{ExpandOptions, Window};

/// Tag naming the rule that created an entry.
pub const TAG_RULE: &str = "calmeshRule";
/// Tag naming (by a short hash) the source entry a block stands for.
pub const TAG_SOURCE: &str = "calmeshSource";

/// The busy rule's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyOptions {
    /// Title of every block.
    pub title: String,
    /// Whether all-day events get blocks.
    pub include_all_day: bool,
    /// Whether tentative events (and tentative replies) count as busy.
    pub include_tentative: bool,
    /// How far back from now events get blocks.
    pub window_past: Duration,
    /// How far ahead of now events get blocks.
    pub window_future: Duration,
    /// The mass-deletion guard.
    pub guard: MassDeleteGuard,
}

impl Default for BusyOptions {
    fn default() -> Self {
        Self {
            title: "Busy".to_owned(),
            include_all_day: false,
            include_tentative: true,
            window_past: Duration::days(1),
            window_future: Duration::days(180),
            guard: MassDeleteGuard::default(),
        }
    }
}

/// Holds back a plan that deletes more than `min_count` links *and* more than
/// `max_share` of the rule's links (invariant 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MassDeleteGuard {
    /// Deleting this many or fewer never trips the guard.
    pub min_count: usize,
    /// Percentage of the rule's links.
    pub max_share_percent: usize,
}

impl Default for MassDeleteGuard {
    fn default() -> Self {
        Self {
            min_count: 10,
            max_share_percent: 50,
        }
    }
}

/// One cached provider entry, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CalEntry {
    /// The provider's id.
    pub remote_id: String,
    /// For an exception of a series: the master's id.
    pub parent_id: Option<String>,
    /// The provider's etag.
    pub etag: Option<String>,
    /// The event.
    pub event: Event,
    /// calmesh tags on the entry.
    pub tags: BTreeMap<String, String>,
}

impl CalEntry {
    /// Whether calmesh (any rule) created this entry.
    pub fn is_calmesh(&self) -> bool {
        self.tags.contains_key(TAG_RULE)
    }
}

/// One calendar of the group with its cached entries.
#[derive(Debug, Clone)]
pub struct BusyCalendar {
    /// The store's id.
    pub id: CalendarId,
    /// A name that stays the same across databases (account + provider
    /// calendar id); target ids are derived from it.
    pub stable_key: String,
    /// Addresses of the calendar's owner: their attendee reply decides
    /// whether an invitation is declined.
    pub owner_emails: Vec<String>,
    /// The zone floating times are read in.
    pub floating_zone: Tz,
    /// Cached entries.
    pub entries: Vec<CalEntry>,
}

/// What identifies a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanLinkKey {
    /// Source calendar.
    pub source_calendar: CalendarId,
    /// Source entry.
    pub source_id: String,
    /// Target calendar.
    pub target_calendar: CalendarId,
}

/// The rule's memory of one block it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLink {
    /// Key.
    pub key: PlanLinkKey,
    /// The block's id in the target calendar.
    pub target_id: String,
    /// Bumped each time the block had to be recreated under a new id.
    pub generation: i64,
    /// Hash of the block as written.
    pub hash: String,
    /// The block's etag after the write.
    pub etag: Option<String>,
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create a block under a client-chosen id.
    Create {
        /// Link to record.
        key: PlanLinkKey,
        /// What ids of this link are derived from ([`target_id`]).
        seed: String,
        /// Id to create it under.
        target_id: String,
        /// Generation of that id.
        generation: i64,
        /// Content.
        block: Event,
        /// Tags.
        tags: BTreeMap<String, String>,
        /// Hash of `block`.
        hash: String,
    },
    /// Replace a block.
    Update {
        /// Link to record.
        key: PlanLinkKey,
        /// The block's id.
        target_id: String,
        /// Generation of that id.
        generation: i64,
        /// Etag expected (None: unconditional).
        etag: Option<String>,
        /// Content.
        block: Event,
        /// Tags.
        tags: BTreeMap<String, String>,
        /// Hash of `block`.
        hash: String,
    },
    /// Delete a block.
    Delete {
        /// Link to forget, if there is one.
        key: Option<PlanLinkKey>,
        /// Target calendar.
        target_calendar: CalendarId,
        /// The block's id.
        target_id: String,
        /// Etag expected.
        etag: Option<String>,
    },
    /// Forget a link whose block is already gone.
    Forget {
        /// Link.
        key: PlanLinkKey,
    },
}

impl Op {
    /// The target calendar.
    pub fn target_calendar(&self) -> &CalendarId {
        match self {
            Self::Create { key, .. } | Self::Update { key, .. } | Self::Forget { key } => {
                &key.target_calendar
            }
            Self::Delete {
                target_calendar, ..
            } => target_calendar,
        }
    }

    /// A short name: create, update, delete, forget.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
            Self::Forget { .. } => "forget",
        }
    }
}

/// Why a source entry has no block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Calendar.
    pub calendar: CalendarId,
    /// Entry.
    pub remote_id: String,
    /// Reason.
    pub reason: SkipReason,
}

/// Reasons a source entry has no block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Created by calmesh: never a source.
    CalmeshBlock,
    /// Marked free.
    Transparent,
    /// Cancelled.
    Cancelled,
    /// The owner declined.
    Declined,
    /// Tentative, and the rule skips tentative events.
    Tentative,
    /// All-day, and the rule skips all-day events.
    AllDay,
    /// Outside the rule's window.
    OutsideWindow,
    /// Its recurrence cannot be expanded.
    BadRecurrence,
}

impl SkipReason {
    /// Text for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CalmeshBlock => "calmesh block",
            Self::Transparent => "free (transparent)",
            Self::Cancelled => "cancelled",
            Self::Declined => "declined",
            Self::Tentative => "tentative",
            Self::AllDay => "all-day",
            Self::OutsideWindow => "outside the window",
            Self::BadRecurrence => "recurrence cannot be expanded",
        }
    }
}

/// A write refused because the target is not calmesh's (invariant 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Target calendar.
    pub calendar: CalendarId,
    /// Target entry.
    pub remote_id: String,
    /// Why.
    pub message: String,
}

/// The mass-deletion guard tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardTrip {
    /// Deletions the plan holds.
    pub deletes: usize,
    /// The rule's links.
    pub links: usize,
}

/// A plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub ops: Vec<Op>,
    /// Entries without blocks, and why.
    pub skipped: Vec<Skip>,
    /// Writes refused to protect entries calmesh did not make.
    pub refused: Vec<Refusal>,
    /// Set when the plan deletes too much: apply nothing, ask a person.
    pub guard: Option<GuardTrip>,
}

impl Plan {
    /// Counts of ops by verb.
    pub fn count(&self, verb: &str) -> usize {
        self.ops.iter().filter(|op| op.verb() == verb).count()
    }
}

/// The window a busy rule covers at `now`.
pub fn window(options: &BusyOptions, now: DateTime<Utc>) -> Window {
    Window {
        from: now - options.window_past,
        to: now + options.window_future,
    }
}

/// Plans the busy rule `rule` over `calendars` at `now`.
pub fn plan(
    rule: &RuleId,
    options: &BusyOptions,
    now: DateTime<Utc>,
    calendars: &[BusyCalendar],
    links: &[PlanLink],
    allow_mass_delete: bool,
) -> Plan {
    let window = window(options, now);
    let mut plan = Plan::default();

    // Desired blocks: (key) -> (source calendar stable key, block event).
    let mut desired: BTreeMap<PlanLinkKey, Event> = BTreeMap::new();
    let mut stable: HashMap<&CalendarId, &str> = HashMap::new();
    for cal in calendars {
        stable.insert(&cal.id, &cal.stable_key);
    }
    for source in calendars {
        for (source_id, block) in source_blocks(source, options, &window, &mut plan.skipped) {
            for target in calendars.iter().filter(|t| t.id != source.id) {
                desired.insert(
                    PlanLinkKey {
                        source_calendar: source.id.clone(),
                        source_id: source_id.clone(),
                        target_calendar: target.id.clone(),
                    },
                    block.clone(),
                );
            }
        }
    }

    let by_key: BTreeMap<&PlanLinkKey, &PlanLink> = links.iter().map(|l| (&l.key, l)).collect();
    let targets: HashMap<&CalendarId, HashMap<&str, &CalEntry>> = calendars
        .iter()
        .map(|c| {
            (
                &c.id,
                c.entries
                    .iter()
                    .map(|e| (e.remote_id.as_str(), e))
                    .collect(),
            )
        })
        .collect();
    let cached = |cal: &CalendarId, id: &str| -> Option<&CalEntry> {
        targets.get(cal).and_then(|m| m.get(id)).copied()
    };
    let ours =
        |entry: &CalEntry| entry.tags.get(TAG_RULE).map(String::as_str) == Some(rule.as_str());
    let mut claimed: BTreeSet<(CalendarId, String)> = BTreeSet::new();

    for (key, block) in &desired {
        let source_key = stable
            .get(&key.source_calendar)
            .copied()
            .unwrap_or_default();
        let target_key = stable
            .get(&key.target_calendar)
            .copied()
            .unwrap_or_default();
        let tags = block_tags(rule, source_key, &key.source_id);
        let hash = event_hash(block).to_string();
        match by_key.get(key) {
            Some(link) => match cached(&key.target_calendar, &link.target_id) {
                Some(entry) if !ours(entry) => {
                    claimed.insert((key.target_calendar.clone(), link.target_id.clone()));
                    plan.refused.push(Refusal {
                        calendar: key.target_calendar.clone(),
                        remote_id: link.target_id.clone(),
                        message: "the linked entry carries no calmesh tag for this rule; \
                                  it is left alone"
                            .to_owned(),
                    });
                }
                Some(entry) => {
                    claimed.insert((key.target_calendar.clone(), link.target_id.clone()));
                    if link.hash != hash {
                        plan.ops.push(Op::Update {
                            key: key.clone(),
                            target_id: link.target_id.clone(),
                            generation: link.generation,
                            etag: entry.etag.clone().or_else(|| link.etag.clone()),
                            block: with_uid(block, &link.target_id),
                            tags,
                            hash,
                        });
                    }
                }
                None => {
                    // The block is gone from the target (a person deleted
                    // it): make a new one under the next generation's id,
                    // since providers keep deleted ids taken.
                    let generation = link.generation + 1;
                    let seed = id_seed(rule, source_key, &key.source_id, target_key);
                    let id = target_id(&seed, generation);
                    claimed.insert((key.target_calendar.clone(), id.clone()));
                    let existing = cached(&key.target_calendar, &id).filter(|e| ours(e));
                    plan.ops.push(create_or_adopt(
                        key, seed, id, generation, block, tags, hash, existing,
                    ));
                }
            },
            None => {
                let seed = id_seed(rule, source_key, &key.source_id, target_key);
                let id = target_id(&seed, 0);
                claimed.insert((key.target_calendar.clone(), id.clone()));
                let existing = cached(&key.target_calendar, &id).filter(|e| ours(e));
                plan.ops.push(create_or_adopt(
                    key, seed, id, 0, block, tags, hash, existing,
                ));
            }
        }
    }

    // Links whose source no longer wants a block.
    for link in links {
        if desired.contains_key(&link.key) {
            continue;
        }
        match cached(&link.key.target_calendar, &link.target_id) {
            Some(entry) if ours(entry) => {
                claimed.insert((link.key.target_calendar.clone(), link.target_id.clone()));
                plan.ops.push(Op::Delete {
                    key: Some(link.key.clone()),
                    target_calendar: link.key.target_calendar.clone(),
                    target_id: link.target_id.clone(),
                    etag: entry.etag.clone(),
                });
            }
            Some(_) => {
                claimed.insert((link.key.target_calendar.clone(), link.target_id.clone()));
                plan.refused.push(Refusal {
                    calendar: link.key.target_calendar.clone(),
                    remote_id: link.target_id.clone(),
                    message: "the linked entry carries no calmesh tag for this rule; \
                              it is left alone"
                        .to_owned(),
                });
                plan.ops.push(Op::Forget {
                    key: link.key.clone(),
                });
            }
            None => plan.ops.push(Op::Forget {
                key: link.key.clone(),
            }),
        }
    }

    // Blocks of this rule that nothing claims: left by a crash between a
    // create and its link, or by a lost database. Only masters and single
    // entries; a series' exceptions go with their master.
    for cal in calendars {
        for entry in &cal.entries {
            if entry.parent_id.is_none()
                && ours(entry)
                && !claimed.contains(&(cal.id.clone(), entry.remote_id.clone()))
            {
                plan.ops.push(Op::Delete {
                    key: None,
                    target_calendar: cal.id.clone(),
                    target_id: entry.remote_id.clone(),
                    etag: entry.etag.clone(),
                });
            }
        }
    }

    let deletes = plan.count("delete");
    let guard = options.guard;
    if !allow_mass_delete
        && deletes > guard.min_count
        && deletes * 100 > links.len() * guard.max_share_percent
    {
        plan.guard = Some(GuardTrip {
            deletes,
            links: links.len(),
        });
    }
    plan
}

#[allow(clippy::too_many_arguments)]
fn create_or_adopt(
    key: &PlanLinkKey,
    seed: String,
    id: String,
    generation: i64,
    block: &Event,
    tags: BTreeMap<String, String>,
    hash: String,
    existing: Option<&CalEntry>,
) -> Op {
    let block = with_uid(block, &id);
    match existing {
        // Written before, but its link was lost (a crash after the write):
        // overwrite it in place rather than create a second one.
        Some(entry) => Op::Update {
            key: key.clone(),
            target_id: id,
            generation,
            etag: entry.etag.clone(),
            block,
            tags,
            hash,
        },
        None => Op::Create {
            key: key.clone(),
            seed,
            target_id: id,
            generation,
            block,
            tags,
            hash,
        },
    }
}

/// Plans the removal of every block a rule (or, without `rule`, any rule)
/// created in `target`: only entries carrying calmesh's tag are touched.
///
/// Links are kept: they remember which id generation each block used, so a
/// later sync that recreates the blocks takes fresh ids instead of the ones
/// the deleted blocks still hold at the provider.
pub fn plan_reset(rule: Option<&RuleId>, target: &BusyCalendar) -> Plan {
    let mut plan = Plan::default();
    for entry in &target.entries {
        let Some(owner) = entry.tags.get(TAG_RULE) else {
            continue;
        };
        if entry.parent_id.is_some() || rule.is_some_and(|r| r.as_str() != owner) {
            continue;
        }
        plan.ops.push(Op::Delete {
            key: None,
            target_calendar: target.id.clone(),
            target_id: entry.remote_id.clone(),
            etag: entry.etag.clone(),
        });
    }
    plan
}

/// The tags of a block.
pub fn block_tags(
    rule: &RuleId,
    source_calendar_key: &str,
    source_id: &str,
) -> BTreeMap<String, String> {
    let digest = Sha256::new()
        .chain_update(source_calendar_key.as_bytes())
        .chain_update([0])
        .chain_update(source_id.as_bytes())
        .finalize();
    let source: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    BTreeMap::from([
        (TAG_RULE.to_owned(), rule.as_str().to_owned()),
        (TAG_SOURCE.to_owned(), source),
    ])
}

/// What a block's ids are derived from: the rule, the source entry and the
/// target calendar, hashed. Carried on [`Op::Create`] so the executor can
/// step to the next generation's id the same way the planner would.
pub fn id_seed(
    rule: &RuleId,
    source_calendar_key: &str,
    source_id: &str,
    target_calendar_key: &str,
) -> String {
    let digest = Sha256::new()
        .chain_update(b"calmesh-busy\0")
        .chain_update(rule.as_str().as_bytes())
        .chain_update([0])
        .chain_update(source_calendar_key.as_bytes())
        .chain_update([0])
        .chain_update(source_id.as_bytes())
        .chain_update([0])
        .chain_update(target_calendar_key.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id a block is created under: 26 base32hex characters (Google's
/// client-chosen id alphabet) from a hash of the seed and the generation.
/// The same inputs always give the same id, so a retried create cannot make
/// a second block; a new generation gives a new id when the old one is
/// taken by a deleted block (providers keep deleted ids).
pub fn target_id(seed: &str, generation: i64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let digest = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update([0])
        .chain_update(generation.to_le_bytes())
        .finalize();
    let mut bits: u64 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(26);
    for byte in digest.iter() {
        bits = (bits << 8) | u64::from(*byte);
        nbits += 8;
        while nbits >= 5 && out.len() < 26 {
            nbits -= 5;
            let index = usize::try_from((bits >> nbits) & 31).unwrap_or(0);
            out.push(char::from(ALPHABET[index]));
        }
    }
    out
}

fn with_uid(block: &Event, id: &str) -> Event {
    let mut block = block.clone();
    block.uid = ItemId::new(id);
    block
}

/// Why an event is not busy, or None when it is.
fn not_busy(event: &Event, owners: &[String], options: &BusyOptions) -> Option<SkipReason> {
    if event.status == Some(Status::Cancelled) {
        return Some(SkipReason::Cancelled);
    }
    if event.transparency == Some(Transparency::Transparent) {
        return Some(SkipReason::Transparent);
    }
    let reply = event
        .attendees
        .iter()
        .find(|a| owners.iter().any(|o| o.eq_ignore_ascii_case(&a.email())))
        .and_then(|a| a.partstat.as_ref());
    if reply == Some(&PartStat::Declined) {
        return Some(SkipReason::Declined);
    }
    if !options.include_tentative
        && (event.status == Some(Status::Tentative) || reply == Some(&PartStat::Tentative))
    {
        return Some(SkipReason::Tentative);
    }
    if !options.include_all_day && event.is_all_day() {
        return Some(SkipReason::AllDay);
    }
    None
}

/// The block for a busy event: its times (and recurrence), nothing else.
fn block_of(event: &Event, options: &BusyOptions) -> Event {
    let mut block = Event::new(event.uid.clone(), event.start.clone());
    block.end = Some(event.effective_end());
    block.summary = Some(options.title.clone());
    block.class = Some(Class::Private);
    block.transparency = Some(Transparency::Opaque);
    block.rrule = event.rrule.clone();
    block.rdates = event.rdates.clone();
    block.exdates = event.exdates.clone();
    block
}

/// The blocks one source calendar asks for: (source entry id, block).
fn source_blocks(
    cal: &BusyCalendar,
    options: &BusyOptions,
    window: &Window,
    skipped: &mut Vec<Skip>,
) -> Vec<(String, Event)> {
    let mut skip = |id: &str, reason| {
        skipped.push(Skip {
            calendar: cal.id.clone(),
            remote_id: id.to_owned(),
            reason,
        });
    };
    let masters: HashMap<&str, &CalEntry> = cal
        .entries
        .iter()
        .filter(|e| e.parent_id.is_none())
        .map(|e| (e.remote_id.as_str(), e))
        .collect();
    let mut exceptions: HashMap<&str, Vec<&CalEntry>> = HashMap::new();
    for entry in &cal.entries {
        if let Some(parent) = entry.parent_id.as_deref()
            && masters.contains_key(parent)
        {
            exceptions.entry(parent).or_default().push(entry);
        }
    }
    let expand = ExpandOptions {
        max_instances: 1,
        floating_zone: cal.floating_zone,
    };
    let mut blocks = Vec::new();
    for entry in &cal.entries {
        if entry.is_calmesh() {
            skip(&entry.remote_id, SkipReason::CalmeshBlock);
            continue;
        }
        let is_exception = entry
            .parent_id
            .as_deref()
            .is_some_and(|p| masters.contains_key(p));
        if is_exception {
            if masters
                .get(entry.parent_id.as_deref().unwrap_or_default())
                .is_some_and(|m| m.is_calmesh())
            {
                continue;
            }
            // An exception is a single block of its own when busy; the
            // master's block excludes its instance either way.
            if let Some(reason) = not_busy(&entry.event, &cal.owner_emails, options) {
                skip(&entry.remote_id, reason);
            } else if !overlaps(&entry.event, window, cal.floating_zone) {
                skip(&entry.remote_id, SkipReason::OutsideWindow);
            } else {
                let mut single = entry.event.clone();
                single.rrule = None;
                single.rdates.clear();
                single.exdates.clear();
                blocks.push((entry.remote_id.clone(), block_of(&single, options)));
            }
            continue;
        }
        let event = &entry.event;
        if let Some(reason) = not_busy(event, &cal.owner_emails, options) {
            skip(&entry.remote_id, reason);
            continue;
        }
        if event.is_recurring() {
            let mut block = block_of(event, options);
            for exception in exceptions
                .get(entry.remote_id.as_str())
                .into_iter()
                .flatten()
            {
                if let Some(rid) = &exception.event.recurrence_id
                    && !block.exdates.contains(&rid.time)
                {
                    block.exdates.push(rid.time.clone());
                }
            }
            let series = crate::event::Item {
                uid: block.uid.clone(),
                master: Some(block.clone()),
                overrides: Vec::new(),
            };
            // Instances that started before the window but still run into it
            // count: look back by the block's length.
            let length = (block.effective_end().to_utc(cal.floating_zone)
                - block.start.to_utc(cal.floating_zone))
            .max(Duration::zero());
            let lookback = Window {
                from: window.from - length,
                to: window.to,
            };
            match series.expand(&lookback, &expand) {
                Ok(expansion) if expansion.instances.is_empty() => {
                    skip(&entry.remote_id, SkipReason::OutsideWindow);
                }
                Ok(_) => blocks.push((entry.remote_id.clone(), block)),
                Err(_) => skip(&entry.remote_id, SkipReason::BadRecurrence),
            }
        } else if overlaps(event, window, cal.floating_zone) {
            blocks.push((entry.remote_id.clone(), block_of(event, options)));
        } else {
            skip(&entry.remote_id, SkipReason::OutsideWindow);
        }
    }
    blocks
}

/// Whether a single event overlaps the window (an event ending exactly at the
/// window's start does not).
fn overlaps(event: &Event, window: &Window, floating: Tz) -> bool {
    let start = event.start.to_utc(floating);
    let end = event.effective_end().to_utc(floating).max(start);
    start < window.to && (end > window.from || (end == start && start >= window.from))
}
