//! `events.list` and `events.instances`: query parameters, the rows a
//! query selects (full or incremental), paging and the response envelope.

use super::config::ExtendedPropertyFilter;
use super::error::ApiError;
use super::faults::chance;
use super::recurrence::{InstanceKey, Occurrence, earliest, instance_id, latest};
use super::resource::{
    extended_property, instance_tombstone, matches_text, render, render_instance,
};
use super::state::{Calendar, State, StoredEvent, timestamp};
use super::tokens::{PageToken, SyncToken, fingerprint};
use calmesh_core::time::EventTime;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// Query parameters in order, repeated ones kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(text) => Err(ApiError::invalid_parameter(
                name,
                format!("Invalid boolean value: '{text}'."),
            )),
        }
    }

    /// An RFC 3339 timestamp with a mandatory offset.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|text| {
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid_parameter(name, format!("Invalid value for: {name}"))
                    })
            })
            .transpose()
    }

    /// `maxResults`: at least 1, capped at `max`.
    pub fn max_results(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("maxResults") {
            None => Ok(default),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(value) if value >= 1 => Ok(usize::try_from(value).unwrap_or(max).min(max)),
                _ => Err(ApiError::invalid_parameter(
                    "maxResults",
                    format!("Invalid value '{text}'. Values must be within the range: [1, {max}]"),
                )),
            },
        }
    }

    /// A fingerprint of the query without its paging parameters.
    pub fn fingerprint(&self, scope: &str) -> u64 {
        let mut pairs: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(key, _)| key != "pageToken" && key != "maxResults")
            .collect();
        pairs.sort();
        let mut text = scope.to_string();
        for (key, value) in pairs {
            text.push('\u{1f}');
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
        fingerprint(&text)
    }
}

/// How rows are ordered (and what their sort key holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// By event id (default without `singleEvents`).
    Id,
    /// By start, then id (`orderBy=startTime`, default with `singleEvents`).
    StartTime,
    /// By last modification, then id (`orderBy=updated`).
    Updated,
}

/// A validated `events.list` / `events.instances` query.
#[derive(Debug, Clone)]
struct EventQuery {
    max_results: usize,
    page_token: Option<PageToken>,
    sync_token: Option<String>,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    single_events: bool,
    order: Order,
    show_deleted: bool,
    updated_min: Option<DateTime<Utc>>,
    ical_uid: Option<String>,
    private_filters: Vec<(String, String)>,
    shared_filters: Vec<(String, String)>,
    q: Option<String>,
    time_zone: Option<(String, Tz)>,
    original_start: Option<InstanceKey>,
    fingerprint: u64,
}

/// Parameters that may not accompany `syncToken` (providers.md A.2).
const FORBIDDEN_WITH_SYNC_TOKEN: [&str; 8] = [
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

impl EventQuery {
    fn parse(params: &Params, scope: &str) -> Result<Self, ApiError> {
        let sync_token = params.get("syncToken").map(str::to_string);
        if sync_token.is_some()
            && let Some(name) = FORBIDDEN_WITH_SYNC_TOKEN
                .iter()
                .find(|name| params.has(name))
        {
            return Err(ApiError::invalid_parameter(
                name,
                format!("The parameter {name} cannot be used together with syncToken."),
            ));
        }
        let single_events = params.bool("singleEvents")?.unwrap_or(false);
        let order = match params.get("orderBy") {
            None => {
                if single_events {
                    Order::StartTime
                } else {
                    Order::Id
                }
            }
            Some("startTime") if single_events => Order::StartTime,
            Some("updated") => Order::Updated,
            Some("startTime") => {
                return Err(ApiError::invalid_parameter(
                    "orderBy",
                    "The requested ordering is not available for the particular query.",
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid_parameter(
                    "orderBy",
                    format!("Invalid value for orderBy: '{other}'."),
                ));
            }
        };
        let time_min = params.time("timeMin")?;
        let time_max = params.time("timeMax")?;
        if let (Some(min), Some(max)) = (time_min, time_max)
            && min >= max
        {
            return Err(ApiError::time_range_empty("timeMax"));
        }
        let filters = |name: &str| -> Result<Vec<(String, String)>, ApiError> {
            params
                .all(name)
                .into_iter()
                .map(|text| {
                    text.split_once('=')
                        .map(|(key, value)| (key.to_string(), value.to_string()))
                        .ok_or_else(|| {
                            ApiError::invalid_parameter(
                                name,
                                format!(
                                    "Invalid value for {name}: '{text}' (expected name=value)."
                                ),
                            )
                        })
                })
                .collect()
        };
        let time_zone = match params.get("timeZone") {
            None => None,
            Some(name) => Some((
                name.to_string(),
                name.parse::<Tz>().map_err(|_| {
                    ApiError::invalid_parameter("timeZone", format!("Invalid time zone: {name}"))
                })?,
            )),
        };
        let original_start = match params.get("originalStart") {
            None => None,
            Some(text) => Some(
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(InstanceKey::Date)
                    .or_else(|_| {
                        DateTime::parse_from_rfc3339(text)
                            .map(|at| InstanceKey::At(at.with_timezone(&Utc)))
                    })
                    .map_err(|_| {
                        ApiError::invalid_parameter(
                            "originalStart",
                            "Invalid value for: originalStart",
                        )
                    })?,
            ),
        };
        let fingerprint = params.fingerprint(scope);
        let page_token = match params.get("pageToken") {
            None => None,
            Some(text) => Some(
                PageToken::decode(text)
                    .filter(|token| token.fingerprint == fingerprint)
                    .ok_or_else(|| {
                        ApiError::invalid_parameter("pageToken", "Invalid page token.")
                    })?,
            ),
        };
        Ok(Self {
            max_results: params.max_results(250, 2500)?,
            page_token,
            sync_token,
            time_min,
            time_max,
            single_events,
            order,
            show_deleted: params.bool("showDeleted")?.unwrap_or(false),
            updated_min: params.time("updatedMin")?,
            ical_uid: params.get("iCalUID").map(str::to_string),
            private_filters: filters("privateExtendedProperty")?,
            shared_filters: filters("sharedExtendedProperty")?,
            q: params.get("q").map(str::to_string),
            time_zone,
            original_start,
            fingerprint,
        })
    }
}

/// One entry of a listing before it is rendered.
#[derive(Debug, Clone)]
enum RowItem {
    Stored(String),
    Instance {
        master_id: String,
        occurrence: Occurrence,
    },
    InstanceTombstone {
        master_id: String,
        occurrence: Occurrence,
    },
}

#[derive(Debug, Clone)]
struct Row {
    key: (i64, String),
    item: RowItem,
}

/// What selecting rows needs besides the query.
struct Context<'a> {
    calendar: &'a Calendar,
    floating_zone: Tz,
    horizon_end: DateTime<Utc>,
    max_instances: usize,
    property_filter: ExtendedPropertyFilter,
}

impl Context<'_> {
    fn passes_filters(&self, event: &StoredEvent, query: &EventQuery) -> bool {
        if let Some(uid) = &query.ical_uid
            && event.str_field("iCalUID") != Some(uid.as_str())
        {
            return false;
        }
        if let Some(q) = &query.q
            && !matches_text(&event.json, q)
        {
            return false;
        }
        if let Some(updated_min) = query.updated_min
            && event.updated < updated_min
        {
            return false;
        }
        let kind_matches = |kind: &str, filters: &[(String, String)]| {
            let matches = |(name, value): &(String, String)| {
                extended_property(&event.json, kind, name) == Some(value.as_str())
            };
            filters.is_empty()
                || match self.property_filter {
                    ExtendedPropertyFilter::Guide => filters.iter().any(matches),
                    ExtendedPropertyFilter::Reference => filters.iter().all(matches),
                }
        };
        kind_matches("private", &query.private_filters)
            && kind_matches("shared", &query.shared_filters)
    }

    fn sort_key(&self, order: Order, id: &str, event: &StoredEvent) -> (i64, String) {
        let number = match order {
            Order::Id => 0,
            Order::StartTime => event.times.start_at(self.floating_zone).timestamp_millis(),
            Order::Updated => event.updated.timestamp_millis(),
        };
        (number, id.to_string())
    }

    /// Instances of a live master in `[from, to)` that no exception replaces.
    fn instances(
        &self,
        master_id: &str,
        master: &StoredEvent,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Occurrence> {
        let Some(series) = &master.series else {
            return Vec::new();
        };
        series
            .occurrences(from, to, self.floating_zone, self.max_instances)
            .into_iter()
            .filter(|occurrence| {
                !self
                    .calendar
                    .has_exception(master_id, InstanceKey::of(&occurrence.original))
            })
            .collect()
    }

    /// Rows of a listing without sync token.
    fn full_rows(&self, query: &EventQuery) -> Vec<Row> {
        let windowed = query.time_min.is_some() || query.time_max.is_some();
        let from = query.time_min.unwrap_or_else(earliest);
        let to = query.time_max.unwrap_or_else(latest);
        let expand_to = query.time_max.unwrap_or(self.horizon_end);
        let include_deleted = query.show_deleted || query.updated_min.is_some();
        let fz = self.floating_zone;
        let mut rows = Vec::new();
        for (id, event) in &self.calendar.events {
            if !self.passes_filters(event, query) {
                continue;
            }
            match (&event.series, &event.exception) {
                (Some(series), _) => {
                    if query.single_events {
                        if event.deleted {
                            continue;
                        }
                        for occurrence in self.instances(id, event, from, expand_to) {
                            let instance = instance_id(id, &occurrence.original);
                            let number = match query.order {
                                Order::Updated => event.updated.timestamp_millis(),
                                _ => occurrence.start_at.timestamp_millis(),
                            };
                            rows.push(Row {
                                key: (number, instance),
                                item: RowItem::Instance {
                                    master_id: id.clone(),
                                    occurrence,
                                },
                            });
                        }
                    } else {
                        if (event.deleted && !include_deleted)
                            || (windowed && !series.may_overlap(from, to))
                        {
                            continue;
                        }
                        rows.push(self.stored_row(query.order, id, event));
                    }
                }
                (None, exception) => {
                    // Cancelled exceptions of a live series are listed
                    // without showDeleted unless instances are expanded.
                    let hidden = event.deleted
                        && !include_deleted
                        && (exception.is_none() || query.single_events);
                    if hidden || (windowed && !event.times.overlaps(from, to, fz)) {
                        continue;
                    }
                    rows.push(self.stored_row(query.order, id, event));
                }
            }
        }
        rows
    }

    fn stored_row(&self, order: Order, id: &str, event: &StoredEvent) -> Row {
        Row {
            key: self.sort_key(order, id, event),
            item: RowItem::Stored(id.to_string()),
        }
    }

    /// Rows of an incremental listing: every entry changed after `since`
    /// up to `snapshot`, in change order.
    fn incremental_rows(
        &self,
        query: &EventQuery,
        since: u64,
        snapshot: u64,
        clip: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        if since >= snapshot {
            return rows;
        }
        for (seq, id) in self.calendar.by_seq.range(since + 1..=snapshot) {
            let Some(event) = self.calendar.events.get(id) else {
                continue;
            };
            let number = i64::try_from(*seq).unwrap_or(i64::MAX);
            if query.single_events && event.series.is_some() {
                let (from, to) = clip.unwrap_or((earliest(), self.horizon_end));
                for occurrence in self.instances(id, event, from, to) {
                    let master_id = id.clone();
                    let key = (number, instance_id(id, &occurrence.original));
                    let item = if event.deleted {
                        RowItem::InstanceTombstone {
                            master_id,
                            occurrence,
                        }
                    } else {
                        RowItem::Instance {
                            master_id,
                            occurrence,
                        }
                    };
                    rows.push(Row { key, item });
                }
                continue;
            }
            if let Some((from, to)) = clip {
                let inside = match &event.series {
                    Some(series) => series.may_overlap(from, to),
                    None => event.times.overlaps(from, to, self.floating_zone),
                };
                if !event.deleted && !inside {
                    continue;
                }
            }
            rows.push(Row {
                key: (number, id.clone()),
                item: RowItem::Stored(id.clone()),
            });
        }
        rows
    }

    fn render(&self, row: &Row) -> Option<Value> {
        match &row.item {
            RowItem::Stored(id) => self.calendar.events.get(id).map(|event| render(id, event)),
            RowItem::Instance {
                master_id,
                occurrence,
            } => {
                let master = self.calendar.events.get(master_id)?;
                Some(Value::Object(render_instance(
                    master_id, master, occurrence,
                )))
            }
            RowItem::InstanceTombstone {
                master_id,
                occurrence,
            } => {
                let master = self.calendar.events.get(master_id)?;
                Some(instance_tombstone(master_id, master, occurrence))
            }
        }
    }
}

/// One page of sorted rows.
struct Page {
    rows: Vec<Row>,
    next: Option<PageToken>,
    /// This is an injected empty page.
    injected_empty: bool,
}

fn paginate(
    mut rows: Vec<Row>,
    page_token: Option<&PageToken>,
    fingerprint: u64,
    snapshot: u64,
    size: usize,
    inject_empty: bool,
) -> Page {
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let cursor = page_token.and_then(|token| token.cursor.clone());
    let start = match &cursor {
        Some(cursor) => rows.partition_point(|row| &row.key <= cursor),
        None => 0,
    };
    let remaining = rows.len().saturating_sub(start);
    if remaining == 0 {
        return Page {
            rows: Vec::new(),
            next: None,
            injected_empty: false,
        };
    }
    let after_empty = page_token.is_some_and(|token| token.after_empty);
    if inject_empty && !after_empty {
        return Page {
            rows: Vec::new(),
            next: Some(PageToken {
                fingerprint,
                snapshot,
                cursor,
                after_empty: true,
            }),
            injected_empty: true,
        };
    }
    let page: Vec<Row> = rows.drain(start..).take(size).collect();
    let next = (remaining > size).then(|| PageToken {
        fingerprint,
        snapshot,
        cursor: page.last().map(|row| row.key.clone()),
        after_empty: false,
    });
    Page {
        rows: page,
        next,
        injected_empty: false,
    }
}

/// The page size a listing for `account` may use, and whether this page is
/// an injected empty one.
pub(crate) fn page_faults(state: &mut State, account: &str, asked: usize) -> (usize, bool) {
    let size = state
        .faults
        .max_page_size(account)
        .map_or(asked, |cap| asked.min(cap));
    let probability = state.faults.empty_page_probability(account);
    let empty = chance(&mut state.rng, probability);
    (size.max(1), empty)
}

/// Checks a sync token against a calendar; every failure is 410.
fn check_sync_token(state: &State, text: &str, calendar: &Calendar) -> Result<SyncToken, ApiError> {
    let token = SyncToken::decode(text, &state.secret).ok_or_else(ApiError::full_sync_required)?;
    let max_age = state
        .faults
        .sync_token_max_age_secs
        .or(state.config.sync_token_max_age.map(|age| age.as_secs()));
    let too_old = max_age.is_some_and(|max| {
        let max_ms = i64::try_from(max)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        token.age_ms(state.now()) > max_ms
    });
    if token.scope != 'e'
        || token.owner != calendar.id
        || token.counter > calendar.counter
        || token.epoch < state.sync_epoch
        || too_old
    {
        return Err(ApiError::full_sync_required());
    }
    Ok(token)
}

/// The envelope every events listing shares.
/// One page of `rows` rendered into the listing envelope (in the query's
/// zone), with what the page says about the next one.
fn render_page(
    context: &Context<'_>,
    calendar: &Calendar,
    query: &EventQuery,
    rows: Vec<Row>,
    snapshot: u64,
    size: usize,
    inject_empty: bool,
) -> (Map<String, Value>, Page) {
    let page = paginate(
        rows,
        query.page_token.as_ref(),
        query.fingerprint,
        snapshot,
        size,
        inject_empty,
    );
    let items = page
        .rows
        .iter()
        .filter_map(|row| context.render(row))
        .collect();
    let zone_name = query
        .time_zone
        .as_ref()
        .map_or(calendar.time_zone.as_str(), |(name, _)| name.as_str());
    (envelope(calendar, zone_name, items), page)
}

fn envelope(calendar: &Calendar, time_zone: &str, items: Vec<Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("kind".into(), json!("calendar#events"));
    out.insert("etag".into(), json!(format!("\"p{}\"", calendar.counter)));
    out.insert("summary".into(), json!(calendar.summary));
    out.insert(
        "description".into(),
        json!(calendar.description.clone().unwrap_or_default()),
    );
    out.insert("updated".into(), json!(timestamp(calendar.updated)));
    out.insert("timeZone".into(), json!(time_zone));
    out.insert("accessRole".into(), json!("owner"));
    out.insert("defaultReminders".into(), json!([]));
    out.insert("items".into(), Value::Array(items));
    out
}

/// `GET /calendar/v3/calendars/{calendarId}/events`
pub(crate) fn list_events(
    state: &mut State,
    account: &str,
    calendar_id: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let query = EventQuery::parse(params, &format!("events|{calendar_id}"))?;
    let now = state.now();
    if let (Some(updated_min), Some(max_age)) =
        (query.updated_min, state.config.updated_min_max_age)
        && now - updated_min > Duration::from_std(max_age).unwrap_or(Duration::MAX)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::GONE,
            "calendar",
            "updatedMinTooLongAgo",
            "The requested minimum modification time lies too far in the past.",
        )
        .at("parameter", "updatedMin"));
    }
    let (size, inject_empty) = page_faults(state, account, query.max_results);
    let calendar = state
        .calendars
        .get(calendar_id)
        .ok_or_else(ApiError::not_found)?;
    let sync = match &query.sync_token {
        Some(text) => Some(check_sync_token(state, text, calendar)?),
        None => None,
    };
    let context = context(state, calendar, &query, now);
    let snapshot = query.page_token.as_ref().map_or(calendar.counter, |token| {
        token.snapshot.min(calendar.counter)
    });
    let rows = match &sync {
        Some(token) => {
            let clip = token
                .window
                .filter(|_| state.config.clip_incremental_to_first_window)
                .map(|(from, to)| {
                    (
                        DateTime::from_timestamp_millis(from).unwrap_or_else(earliest),
                        DateTime::from_timestamp_millis(to).unwrap_or_else(latest),
                    )
                });
            context.incremental_rows(&query, token.counter, snapshot, clip)
        }
        None => context.full_rows(&query),
    };
    let (mut out, page) = render_page(
        &context,
        calendar,
        &query,
        rows,
        snapshot,
        size,
        inject_empty,
    );
    match page.next {
        Some(next) => {
            out.insert("nextPageToken".into(), json!(next.encode()));
        }
        None => {
            let window = match &sync {
                Some(token) => token.window,
                None if query.time_min.is_some() || query.time_max.is_some() => Some((
                    query.time_min.unwrap_or_else(earliest).timestamp_millis(),
                    query.time_max.unwrap_or_else(latest).timestamp_millis(),
                )),
                None => None,
            };
            let token = SyncToken {
                scope: 'e',
                owner: calendar.id.clone(),
                counter: snapshot,
                issued_at: now.timestamp_millis(),
                epoch: state.sync_epoch,
                window,
            };
            out.insert("nextSyncToken".into(), json!(token.encode(&state.secret)));
        }
    }
    if page.injected_empty {
        state.stats.faults_injected += 1;
    }
    Ok(Value::Object(out))
}

fn context<'a>(
    state: &State,
    calendar: &'a Calendar,
    query: &EventQuery,
    now: DateTime<Utc>,
) -> Context<'a> {
    Context {
        calendar,
        floating_zone: query.time_zone.as_ref().map_or(calendar.tz, |(_, tz)| *tz),
        horizon_end: now
            + Duration::from_std(state.config.expansion_horizon).unwrap_or(Duration::days(365)),
        max_instances: state.config.max_instances_per_series,
        property_filter: state.config.extended_property_filter,
    }
}

/// `GET /calendar/v3/calendars/{calendarId}/events/{eventId}/instances`
pub(crate) fn list_instances(
    state: &mut State,
    account: &str,
    calendar_id: &str,
    event_id: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let query = EventQuery::parse(params, &format!("instances|{calendar_id}|{event_id}"))?;
    let now = state.now();
    let (size, inject_empty) = page_faults(state, account, query.max_results);
    let calendar = state
        .calendars
        .get(calendar_id)
        .ok_or_else(ApiError::not_found)?;
    let master = calendar
        .events
        .get(event_id)
        .ok_or_else(ApiError::not_found)?;
    if master.deleted {
        return Err(ApiError::deleted());
    }
    let context = context(state, calendar, &query, now);
    let fz = context.floating_zone;
    let from = query.time_min.unwrap_or_else(earliest);
    let to = query.time_max.unwrap_or_else(latest);
    let expand_to = query.time_max.unwrap_or(context.horizon_end);
    let wanted = |original: &EventTime| {
        query
            .original_start
            .is_none_or(|key| key == InstanceKey::of(original))
    };
    let mut rows = Vec::new();
    if master.series.is_none() {
        if master.times.overlaps(from, to, fz) && wanted(&master.times.start) {
            rows.push(context.stored_row(Order::StartTime, event_id, master));
        }
    } else {
        for occurrence in context.instances(event_id, master, from, expand_to) {
            if !wanted(&occurrence.original) {
                continue;
            }
            rows.push(Row {
                key: (
                    occurrence.start_at.timestamp_millis(),
                    instance_id(event_id, &occurrence.original),
                ),
                item: RowItem::Instance {
                    master_id: event_id.to_string(),
                    occurrence,
                },
            });
        }
        for id in calendar.exception_ids(event_id) {
            let Some(exception) = calendar.events.get(&id) else {
                continue;
            };
            let original_ok = exception
                .exception
                .as_ref()
                .is_some_and(|link| wanted(&link.original));
            if (exception.deleted && !query.show_deleted)
                || !original_ok
                || !exception.times.overlaps(from, to, fz)
            {
                continue;
            }
            rows.push(context.stored_row(Order::StartTime, &id, exception));
        }
    }
    let snapshot = calendar.counter;
    let (mut out, page) = render_page(
        &context,
        calendar,
        &query,
        rows,
        snapshot,
        size,
        inject_empty,
    );
    if let Some(next) = page.next {
        out.insert("nextPageToken".into(), json!(next.encode()));
    }
    if page.injected_empty {
        state.stats.faults_injected += 1;
    }
    Ok(Value::Object(out))
}
